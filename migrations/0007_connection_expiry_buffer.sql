-- The client's own expiry buffer (`quirks.expiry_buffer_secs`, DESIGN §6.14) kept on each of
-- its connections, so that the token hot path reads the connection alone instead of joining
-- `clients` on every request (issue 15: a token with `provider_data` must not get slower).
-- A projection like the rest of the row: the connections projection copies the client's value
-- when a connection is authorized, the clients projection copies a changed value to the
-- client's connections (both in the transaction that records the event), and a replay
-- rebuilds it. NULL: the global TOKEN_EXPIRY_BUFFER_SECONDS.
ALTER TABLE connections ADD COLUMN expiry_buffer_secs integer;
UPDATE connections c SET expiry_buffer_secs = (cl.quirks->>'expiry_buffer_secs')::integer
FROM clients cl WHERE cl.id = c.client_id AND cl.quirks ? 'expiry_buffer_secs';

-- The hot path (see 0001, 0004, 0005): the same columns in the same order, the buffer now read
-- off the connection. A function of the previous release reads it by name as before. An empty
-- `provider_data` (most providers capture nothing) comes back as NULL, which the service reads
-- as `{}`: no JSON to send and parse on every request for nothing.
CREATE OR REPLACE FUNCTION token_lookup(p_key_hash bytea, p_connection_id text)
RETURNS TABLE (o_key_id uuid, o_key_scopes text[], o_client_id uuid, o_status text, o_access_token text,
               o_token_type text, o_expires_at timestamptz, o_scopes text[], o_last_failed_at timestamptz,
               o_last_refreshed_at timestamptz, o_has_refresh_token boolean, o_provider_data jsonb,
               o_expiry_buffer_secs integer, o_grant_type text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key_hash IS NULL THEN
        RETURN QUERY
        SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL,
               NULLIF(c.provider_data, '{}'::jsonb),
               c.expiry_buffer_secs, c.grant_type
        FROM connections c
        WHERE c.connection_id = p_connection_id;
    ELSE
        RETURN QUERY
        SELECT k.id, k.scopes, c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL,
               NULLIF(c.provider_data, '{}'::jsonb),
               c.expiry_buffer_secs, c.grant_type
        FROM api_keys k
        LEFT JOIN connections c ON c.connection_id = p_connection_id
        WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
    END IF;
END
$$;
