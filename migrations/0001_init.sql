-- keyledger 0001: the event log, the projections read by the functions, pending OAuth
-- states and the request log. Applied once; never edit it after it has been applied
-- anywhere (the migrate function refuses a changed checksum) — add a new file instead.

-- The append-only log (DESIGN §4.1). Positions come from a sequence, so a rolled-back
-- append leaves a gap; readers that follow the log must tolerate gaps.
CREATE TABLE events (
    position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id   text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 200),
    version     integer     NOT NULL CHECK (version > 0),
    type        text        NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX events_type_position ON events (type, position);

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Triggers bind every role, the owner and superusers included; grants (shared/src/roles.rs,
-- applied by migrate) additionally leave the function roles with INSERT and SELECT at most.
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Where each relay of the log to the outside stands (DESIGN §6.11). `position` is the
-- last event handled; a gap below a newer committed event is waited on until every
-- transaction that could still fill it (xid < gap_xmax) has ended.
CREATE TABLE relay_state (
    name            text        PRIMARY KEY,
    position        bigint      NOT NULL DEFAULT 0,
    gap_position    bigint,
    gap_xmax        bigint,
    published_total bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO relay_state (name) VALUES ('eventbridge');

-- API keys (DESIGN §6.8). Only the SHA-256 of a key is kept.
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    key_hash    bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    version     integer     NOT NULL
);

-- OAuth clients (DESIGN §6.1). client_secret holds a ciphertext bound to client-<id>.
CREATE TABLE clients (
    id                      uuid        PRIMARY KEY,
    name                    text        NOT NULL,
    authorize_url           text        NOT NULL,
    token_url               text        NOT NULL,
    revoke_url              text,
    client_id               text        NOT NULL,
    client_secret           text        NOT NULL,
    redirect_uri            text        NOT NULL,
    scopes                  text[]      NOT NULL DEFAULT '{}',
    auth_method             text        NOT NULL CHECK (auth_method IN ('client_secret_post', 'client_secret_basic')),
    pkce                    boolean     NOT NULL DEFAULT false,
    extra_authorize_params  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    -- Deleted clients stay (connections and the log still name them) but are hidden.
    deleted_at              timestamptz,
    version                 integer     NOT NULL
);
CREATE INDEX clients_name ON clients (name);

-- Connections (DESIGN §6.4). Tokens are ciphertexts bound to connection-<connection_id>.
CREATE TABLE connections (
    connection_id           text        PRIMARY KEY CHECK (connection_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    client_id               uuid        NOT NULL,
    status                  text        NOT NULL CHECK (status IN ('active', 'refresh_failing', 'reauthorization_required', 'revoked')),
    access_token            text,
    refresh_token           text,
    token_type              text        NOT NULL DEFAULT 'Bearer',
    expires_at              timestamptz,
    scopes                  text[]      NOT NULL DEFAULT '{}',
    provider_data           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    last_refreshed_at       timestamptz,
    refresh_token_used_at   timestamptz,
    consecutive_failures    integer     NOT NULL DEFAULT 0,
    next_attempt_at         timestamptz,
    -- Inline refreshes after a transient failure are throttled from this instant.
    last_failed_at          timestamptz,
    last_error              text,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    version                 integer     NOT NULL
);
CREATE INDEX connections_client ON connections (client_id, connection_id);
CREATE INDEX connections_status ON connections (status, connection_id);
-- The scheduled refresh scans by expiry among refreshable connections.
CREATE INDEX connections_due ON connections (expires_at)
    WHERE status IN ('active', 'refresh_failing') AND expires_at IS NOT NULL;
-- Keep-alive of idle refresh tokens scans by last use.
CREATE INDEX connections_idle ON connections (refresh_token_used_at)
    WHERE status IN ('active', 'refresh_failing') AND refresh_token IS NOT NULL;

-- The hot path of GET /v1/tokens/{id}: the API key (by SHA-256; NULL for the bootstrap admin
-- key, checked in memory) and the connection in one call. A PL/pgSQL function because it
-- caches its plans per server session: the join is not parsed and planned on every request,
-- yet the caller needs no named prepared statement (which would pin RDS Proxy connections).
-- No API key row → no row; a key without the connection → one row of NULL connection columns.
CREATE FUNCTION token_lookup(p_key_hash bytea, p_connection_id text)
RETURNS TABLE (o_key_id uuid, o_key_scopes text[], o_client_id uuid, o_status text, o_access_token text,
               o_token_type text, o_expires_at timestamptz, o_scopes text[], o_last_failed_at timestamptz,
               o_last_refreshed_at timestamptz, o_has_refresh_token boolean)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key_hash IS NULL THEN
        RETURN QUERY
        SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL
        FROM connections c WHERE c.connection_id = p_connection_id;
    ELSE
        RETURN QUERY
        SELECT k.id, k.scopes, c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL
        FROM api_keys k LEFT JOIN connections c ON c.connection_id = p_connection_id
        WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
    END IF;
END
$$;

-- Pending authorizations (not events: short-lived, deleted when used or expired).
-- The state itself is never stored, only its SHA-256.
CREATE TABLE oauth_states (
    state_hash      bytea       PRIMARY KEY CHECK (length(state_hash) = 32),
    client_id       uuid        NOT NULL,
    connection_id   text        NOT NULL,
    -- Ciphertext bound to oauth-state-<hex state_hash>.
    code_verifier   text,
    return_to       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Licenses (DESIGN §6.6). key_hash = HMAC-SHA-256(pepper, key) for lookup; license_key is
-- a ciphertext bound to license-<id> so an operator can reveal it.
CREATE TABLE licenses (
    id                  uuid        PRIMARY KEY,
    key_hash            bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    license_key         text        NOT NULL,
    email               text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    max_installations   integer     NOT NULL CHECK (max_installations > 0),
    max_inactive_days   integer     CHECK (max_inactive_days > 0),
    expires_at          timestamptz,
    metadata            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Rows in installations for this license, kept by the projection so that the hot path
    -- never counts them.
    installations_used  integer     NOT NULL DEFAULT 0 CHECK (installations_used >= 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             integer     NOT NULL
);
CREATE INDEX licenses_email ON licenses (lower(email), id);
CREATE INDEX licenses_status ON licenses (status, id);

-- Active installations. last_seen_at is an observation updated in place (not an event),
-- so replay ignores it.
CREATE TABLE installations (
    license_id      uuid        NOT NULL REFERENCES licenses (id),
    installation_id text        NOT NULL,
    name            text,
    activated_at    timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    PRIMARY KEY (license_id, installation_id)
);

-- The hot path of POST /v1/licenses/validate (DESIGN §6.6), called as one statement:
-- find the license by key hash, touch last_seen_at only when the license is usable. A function because PL/pgSQL keeps its statements' plans for the life
-- of the backend: the unnamed statements the functions send (no protocol-level prepared
-- statements: they would pin RDS Proxy connections) are otherwise planned on every call,
-- which costs more than executing them. The codes and their precedence stay in Rust.
-- synchronous_commit is off for this call's own transaction only (set_config(.., true)):
-- last_seen_at is an observation, losing the last fraction of a second of them in a crash
-- is harmless, and waiting for the WAL flush would dominate every check.
CREATE FUNCTION license_validate(p_key_hash bytea, p_installation_id text)
RETURNS TABLE (id uuid, status text, expires_at timestamptz, max_installations integer, key_hash bytea,
               installations_used bigint, activated_at timestamptz, last_seen_at timestamptz,
               expired boolean, checked_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    l record;
BEGIN
    SELECT li.id, li.status, li.expires_at, li.max_installations, li.key_hash, li.installations_used INTO l
    FROM licenses li WHERE li.key_hash = p_key_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    id := l.id; status := l.status; expires_at := l.expires_at; max_installations := l.max_installations;
    key_hash := l.key_hash; installations_used := l.installations_used; checked_at := now();
    expired := l.expires_at IS NOT NULL AND l.expires_at <= checked_at;
    IF l.status = 'active' AND NOT expired THEN
        PERFORM set_config('synchronous_commit', 'off', true);
        UPDATE installations i SET last_seen_at = checked_at
        WHERE i.license_id = l.id AND i.installation_id = p_installation_id
        RETURNING i.activated_at, i.last_seen_at INTO activated_at, last_seen_at;
    ELSE
        SELECT i.activated_at, i.last_seen_at INTO activated_at, last_seen_at
        FROM installations i WHERE i.license_id = l.id AND i.installation_id = p_installation_id;
    END IF;
    RETURN NEXT;
END
$$;

-- Request log (DESIGN §6.7): its own append-only table, partitioned by month so that
-- retention drops whole partitions. Partitions are created by the daily upkeep; the
-- default partition catches anything outside them so an insert never fails for a date
-- (the upkeep moves such rows into their month's partition when it creates it).
-- `id` is a UUID v7 whose timestamp is `occurred_at`'s millisecond, so a lookup by id
-- prunes to one partition and uses the primary key: no separate index on `id`.
CREATE TABLE request_log (
    id                      uuid        NOT NULL,
    occurred_at             timestamptz NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now(),
    service                 text        NOT NULL,
    endpoint                text        NOT NULL,
    method                  text        NOT NULL,
    status_code             integer     NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    duration_ms             integer     CHECK (duration_ms >= 0),
    user_identifier         text,
    request_id              text,
    request_body            text,
    response_body           text,
    request_body_truncated  boolean     NOT NULL DEFAULT false,
    response_body_truncated boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE request_log_default PARTITION OF request_log DEFAULT;
-- Newest-first lists without filters walk the primary key backwards. Every index here
-- costs ingest throughput, so only the filters that need one have one.
CREATE INDEX request_log_service ON request_log (service, occurred_at DESC, id DESC);
CREATE INDEX request_log_service_status ON request_log (service, status_code, occurred_at DESC, id DESC);
CREATE INDEX request_log_user ON request_log (user_identifier, occurred_at DESC, id DESC)
    WHERE user_identifier IS NOT NULL;

-- (service, request_id) deduplicates repeated deliveries across partitions; `id` is the
-- record that claimed the key. Keys of records older than the oldest kept partition are
-- deleted by the same daily upkeep that drops partitions, with one sequential scan: an
-- index on occurred_at would cost every ingested record more than it saves once a day.
CREATE TABLE request_log_keys (
    service     text        NOT NULL,
    request_id  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    id          uuid        NOT NULL,
    PRIMARY KEY (service, request_id)
);

-- Partition upkeep without DDL rights: the request-log role may not create, alter or drop
-- tables (only migrate's user owns the schema), so it goes through these two functions,
-- which run as their owner and can touch nothing but request_log's own partitions.
-- Creating a month that already has rows in the default partition builds the partition
-- beside the table, moves the rows, then attaches it (a partition cannot be created over
-- rows of the default one). Returns the rows moved, or NULL when the partition existed.
CREATE FUNCTION request_log_create_partition(partition_name text, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    moved bigint := 0;
BEGIN
    IF partition_name !~ '^request_log_[a-z0-9_]{1,40}$' OR partition_name IN ('request_log_default', 'request_log_keys')
       OR from_ts >= to_ts THEN
        RAISE EXCEPTION 'invalid partition % [%, %)', partition_name, from_ts, to_ts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass('public.' || partition_name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM public.request_log_default WHERE occurred_at >= from_ts AND occurred_at < to_ts) THEN
        EXECUTE format('CREATE TABLE public.%I (LIKE public.request_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       partition_name);
        EXECUTE format('WITH moved AS (DELETE FROM public.request_log_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
                       'INSERT INTO public.%I SELECT * FROM moved', from_ts, to_ts, partition_name);
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                       partition_name, partition_name || '_range', from_ts, to_ts);
        EXECUTE format('ALTER TABLE public.request_log ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                       partition_name, from_ts, to_ts);
    ELSE
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.request_log FOR VALUES FROM (%L) TO (%L)',
                       partition_name, from_ts, to_ts);
    END IF;
    RETURN moved;
END
$$;

CREATE FUNCTION request_log_drop_partition(partition_name text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF partition_name = 'request_log_default' OR NOT EXISTS (
        SELECT 1 FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = 'public.request_log'::regclass AND n.nspname = 'public' AND c.relname = partition_name
    ) THEN
        RAISE EXCEPTION '% is not a droppable partition of request_log', partition_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('DROP TABLE public.%I', partition_name);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION request_log_create_partition(text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION request_log_drop_partition(text) FROM PUBLIC;
