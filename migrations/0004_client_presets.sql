-- Provider presets, capture lists, grants and quirks on clients (DESIGN §6.13, §6.14).
--
-- Every column has a constant default, so ADD COLUMN is a catalogue change only, and clients
-- registered before this migration read as what they were: no preset, nothing captured, the
-- authorization_code grant, RFC 6749 behaviour (`quirks` = {} means every quirk at its
-- default). Functions of the previous release, still running while a deploy rolls over,
-- insert without these columns and get the same defaults.
ALTER TABLE clients
    ADD COLUMN preset        text,
    ADD COLUMN preset_params jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN capture       jsonb NOT NULL DEFAULT '{"callback": [], "token": []}'::jsonb,
    ADD COLUMN grants        jsonb NOT NULL DEFAULT '["authorization_code"]'::jsonb,
    ADD COLUMN quirks        jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The hot path of GET /v1/tokens/{id} (see 0001) now also returns what the caller needs with
-- its token and what decides an inline refresh: the connection's provider_data and the
-- client's own expiry buffer (a provider that refuses early refreshes). Still one call, one
-- round trip: the client is joined by primary key.
DROP FUNCTION token_lookup(bytea, text);
CREATE FUNCTION token_lookup(p_key_hash bytea, p_connection_id text)
RETURNS TABLE (o_key_id uuid, o_key_scopes text[], o_client_id uuid, o_status text, o_access_token text,
               o_token_type text, o_expires_at timestamptz, o_scopes text[], o_last_failed_at timestamptz,
               o_last_refreshed_at timestamptz, o_has_refresh_token boolean, o_provider_data jsonb,
               o_expiry_buffer_secs integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key_hash IS NULL THEN
        RETURN QUERY
        SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL, c.provider_data,
               (cl.quirks->>'expiry_buffer_secs')::integer
        FROM connections c LEFT JOIN clients cl ON cl.id = c.client_id
        WHERE c.connection_id = p_connection_id;
    ELSE
        RETURN QUERY
        SELECT k.id, k.scopes, c.client_id, c.status, c.access_token, c.token_type, c.expires_at,
               c.scopes, c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL, c.provider_data,
               (cl.quirks->>'expiry_buffer_secs')::integer
        FROM api_keys k
        LEFT JOIN connections c ON c.connection_id = p_connection_id
        LEFT JOIN clients cl ON cl.id = c.client_id
        WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
    END IF;
END
$$;
