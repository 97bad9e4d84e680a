-- Runs once, when the ClickHouse volume is new (/docker-entrypoint-initdb.d). The schema itself is created by
-- `llmpulse migrate` (the `migrate` service in docker-compose.yml); this only makes sure the database exists
-- before the read-only Grafana user's grant on it is used.
CREATE DATABASE IF NOT EXISTS llmpulse;
