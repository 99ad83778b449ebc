-- Connection tags and client-credentials connections (DESIGN §6.14).
--
-- Tags are the caller's `name: value` labels of a connection (at most 10, checked by the
-- service): a jsonb object of strings, filtered with containment (`tags @> '{"org": "acme"}'`),
-- which the GIN index with jsonb_path_ops serves. ADD COLUMN with a constant default is a
-- catalogue change only; the default stays for functions of the previous release that still
-- insert without tags while a deploy rolls over.
ALTER TABLE connections ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(tags) = 'object');
CREATE INDEX connections_tags ON connections USING gin (tags jsonb_path_ops);

-- How the connection's tokens are obtained and renewed: `authorization_code` (a refresh
-- token, when the provider issued one) or `client_credentials` (a new token request with the
-- client's own credentials). The service refuses a value it does not know (fails closed).
ALTER TABLE connections ADD COLUMN grant_type text NOT NULL DEFAULT 'authorization_code';

-- Tags given when an authorization starts wait with its state for the callback.
ALTER TABLE oauth_states ADD COLUMN tags jsonb;

-- The hot path (see 0004) also says how the connection's token is renewed, so that a due
-- client-credentials token needs no second read to learn it: o_grant_type, appended after
-- 0004's columns (a function of the previous release reads by name and ignores it).
DROP FUNCTION token_lookup(bytea, text);
CREATE FUNCTION token_lookup(p_key_hash bytea, p_connection_id text)
RETURNS TABLE (o_key_id uuid, o_key_scopes text[], o_client_id uuid, o_status text, o_access_token text,
               o_token_type text, o_expires_at timestamptz, o_scopes text[], o_last_failed_at timestamptz,
               o_last_refreshed_at timestamptz, o_has_refresh_token boolean, o_provider_data jsonb,
               o_expiry_buffer_secs integer, o_grant_type text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key_hash IS NULL THEN
        RETURN QUERY
        SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL, c.provider_data,
               (cl.quirks->>'expiry_buffer_secs')::integer, c.grant_type
        FROM connections c LEFT JOIN clients cl ON cl.id = c.client_id
        WHERE c.connection_id = p_connection_id;
    ELSE
        RETURN QUERY
        SELECT k.id, k.scopes, c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL, c.provider_data,
               (cl.quirks->>'expiry_buffer_secs')::integer, c.grant_type
        FROM api_keys k
        LEFT JOIN connections c ON c.connection_id = p_connection_id
        LEFT JOIN clients cl ON cl.id = c.client_id
        WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
    END IF;
END
$$;
