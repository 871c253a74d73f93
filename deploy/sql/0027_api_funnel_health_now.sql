-- ka-api reads a stage's health from funnel_health_now (0023): funnel_health
-- holds the band as of its last change, the view adds the live ratio.
GRANT SELECT ON funnel_health_now TO ka_api;
