-- The read-only database role Grafana connects as.
--
-- Run it in Switchyard's database as the role that owns the tables (the one
-- that runs `switchyard migrate`), after the migrations:
--
--   psql "$SWITCHYARD_DATABASE_URL" -f dashboards/grafana/readonly_role.sql
--   psql "$SWITCHYARD_DATABASE_URL" -c "ALTER ROLE switchyard_grafana PASSWORD '…'"
--
-- Grafana runs whatever SQL a panel holds, so this role may only read:
-- SELECT on Switchyard's tables (and on tables created later by the owner,
-- through default privileges), no write privilege anywhere, and every
-- transaction read-only by default. API token hashes and webhook replay
-- digests are not readable: no panel needs them. Re-running it is harmless.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'switchyard_grafana') THEN
        CREATE ROLE switchyard_grafana LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO switchyard_grafana', current_database());
END
$$;

ALTER ROLE switchyard_grafana SET default_transaction_read_only = on;
ALTER ROLE switchyard_grafana SET statement_timeout = '30s';

GRANT USAGE ON SCHEMA public TO switchyard_grafana;
REVOKE CREATE ON SCHEMA public FROM switchyard_grafana;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO switchyard_grafana;
REVOKE ALL ON TABLE api_token, webhook_delivery FROM switchyard_grafana;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO switchyard_grafana;
