INSERT INTO connections (connection_id, client_id, status, access_token, refresh_token, token_type, expires_at, scopes,
                         provider_data, refresh_token_used_at, consecutive_failures, created_at, updated_at, version,
                         tags, grant_type, expiry_buffer_secs)
VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, 0, $9, $9, $10, coalesce($11, '{}'::jsonb), $12,
        -- The client's own expiry buffer, kept on the row for the hot path (migration 0007).
        (SELECT (quirks->>'expiry_buffer_secs')::integer FROM clients WHERE id = $2))
ON CONFLICT (connection_id) DO UPDATE SET
    client_id = EXCLUDED.client_id, status = 'active', access_token = EXCLUDED.access_token,
    refresh_token = EXCLUDED.refresh_token, token_type = EXCLUDED.token_type, expires_at = EXCLUDED.expires_at,
    scopes = EXCLUDED.scopes, provider_data = EXCLUDED.provider_data,
    refresh_token_used_at = EXCLUDED.refresh_token_used_at, consecutive_failures = 0, next_attempt_at = NULL,
    last_failed_at = NULL, last_error = NULL, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,
    tags = coalesce($11, connections.tags), grant_type = EXCLUDED.grant_type,
    expiry_buffer_secs = EXCLUDED.expiry_buffer_secs
