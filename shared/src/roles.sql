-- keyledger database roles: the SQL that shared/src/roles.rs runs on every `migrate` Create /
-- Update (after the migrations, in one transaction, under the migrations' advisory lock).
-- Not a numbered migration: it is re-applied whole every time, so it must stay idempotent.
-- The grants themselves are the matrix in roles.rs (GRANTS), which the tests and the
-- deploy guide read too.

-- @schema: once per run.
-- PostgreSQL before 15 lets every role create objects in the public schema; only the
-- owner (the migrate user) may. (A no-op with a warning where we do not own the schema.)
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- @role: once per function role; {role} and {database} are quoted identifiers.
-- Start from nothing, so a privilege removed from the matrix is removed from the role too.
-- The whole run is one transaction: a session never sees a role half-granted.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role};
REVOKE CREATE ON SCHEMA public FROM {role};
GRANT CONNECT ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
