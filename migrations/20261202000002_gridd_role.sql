-- gridd serves as its own database role, gridd_app: it reads and writes the tables it serves
-- from, may only append to the audit trail, and owns nothing the migrations made, so it can
-- neither alter nor drop a table, a trigger or a function. `gridd migrate` runs as the owner.
-- Roles belong to the cluster: the role is made once, when missing, and granted here for this
-- database. An owner without CREATEROLE needs the role made by the administrator first.

ALTER TABLE audit_log ADD COLUMN unit text;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridd_app') THEN
        CREATE ROLE gridd_app NOLOGIN;
    END IF;
EXCEPTION
    -- another database's migration made it at the same moment
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE, CREATE ON SCHEMA public TO gridd_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gridd_app;
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_log FROM gridd_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO gridd_app;
-- what later migrations (and the owner's tools, such as the history import) create
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gridd_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO gridd_app;
REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM gridd_app;
