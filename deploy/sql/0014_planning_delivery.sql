-- The planning feed's won demand and overdue demand (DOMAIN.md section 5,
-- docs/domain-choices.md "Planning feed").
--
-- A won deal stays committed demand until the booked orders that name it
-- cover its line items per SKU: the forecast worker reads those orders.
GRANT SELECT ON sales_order, sales_order_line TO ka_forecast_worker;

-- No demand stays in a month that is over: when the forecast worker's month
-- rolls over it re-marks the opportunities with a planning line before the
-- new month, found by this index.
CREATE INDEX planning_line_month ON planning_line (period_month);
