#!/bin/sh
# PostgreSQL init script of deploy/compose.yaml (runs once, on an empty data
# volume): creates the workers' login roles with a password before the first
# `kactl migrate`, whose 0012_worker_roles.sql (0018_alert_bridge.sql for the
# bridge's) then finds them and only grants.
# psql quotes the name and the password (:"role", :'password').
set -eu
for role in ka_opportunity_worker ka_visit_worker ka_order_worker ka_forecast_worker ka_alert_bridge ka_api; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$role" -v password="$KA_WORKER_PG_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
SQL
done
