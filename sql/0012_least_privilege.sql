-- Least privilege (docs/RELIABILITY.md). Nobody but our roles can touch the automation and analytics
-- schemas: PUBLIC (and Supabase's anon/authenticated) lose every privilege there, every table has row-level
-- security with policies only for our roles, and two group roles (NOLOGIN: grant them to login users) exist:
--   autopilot_pipeline  reads and writes every table (the Dagster pipeline, `autopilot` commands);
--   autopilot_app       the monitored application: may only call automation.log_query_performance.
-- The table owner (whoever runs the migrations) and superusers bypass RLS, as Postgres defines it.
-- Idempotent: roles are created when missing (they are cluster-wide, other databases may have made them),
-- grants and revokes repeat harmlessly, policies are replaced. `autopilot db migrate` calls
-- automation.apply_least_privilege() again after any later migration, so new tables are covered too.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['autopilot_pipeline', 'autopilot_app'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by a migration of another database on this server
            END;
        END IF;
    END LOOP;
END
$$;

-- The one thing the application does: log a query's timing. Runs with its owner's rights, so the app
-- needs no table privilege; search_path pinned so no object of the caller's can stand in for ours.
ALTER FUNCTION automation.log_query_performance(text, double precision, bigint, text)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION automation.apply_least_privilege() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s text;
    t record;
    outsider text;
    outsiders text[] := ARRAY(
        SELECT rolname::text FROM pg_roles WHERE rolname IN ('anon', 'authenticated')  -- Supabase's API roles
    );
BEGIN
    FOREACH s IN ARRAY ARRAY['automation', 'analytics'] LOOP
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM PUBLIC', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM PUBLIC', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC', s);
        FOREACH outsider IN ARRAY outsiders LOOP
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', s, outsider);
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', s, outsider);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', s, outsider);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', s, outsider);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM %I', s, outsider);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM %I', s, outsider);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON FUNCTIONS FROM %I', s, outsider);
        END LOOP;

        -- the pipeline: everything on the data, nothing on the structure
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO autopilot_pipeline', s);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA %I TO autopilot_pipeline', s);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO autopilot_pipeline', s);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO autopilot_pipeline', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO autopilot_pipeline', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO autopilot_pipeline', s);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT EXECUTE ON FUNCTIONS TO autopilot_pipeline', s);

        FOR t IN
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = s AND c.relkind IN ('r', 'p')
        LOOP
            EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', s, t.relname);
            EXECUTE format('DROP POLICY IF EXISTS autopilot_pipeline_all ON %I.%I', s, t.relname);
            EXECUTE format(
                'CREATE POLICY autopilot_pipeline_all ON %I.%I FOR ALL TO autopilot_pipeline USING (true) WITH CHECK (true)',
                s, t.relname
            );
        END LOOP;
    END LOOP;

    -- the application: the schema (to name the function) and that one function, nothing else
    REVOKE ALL ON SCHEMA analytics FROM autopilot_app;
    REVOKE ALL ON ALL TABLES IN SCHEMA automation FROM autopilot_app;
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA automation FROM autopilot_app;
    GRANT USAGE ON SCHEMA automation TO autopilot_app;
    GRANT EXECUTE ON FUNCTION automation.log_query_performance(text, double precision, bigint, text)
        TO autopilot_app;
    -- this function itself: owner only
    REVOKE ALL ON FUNCTION automation.apply_least_privilege() FROM autopilot_pipeline;
END
$fn$;

SELECT automation.apply_least_privilege();
