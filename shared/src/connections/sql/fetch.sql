SELECT NULL::uuid AS o_key_id, NULL::text[] AS o_key_scopes, c.client_id AS o_client_id, c.status AS o_status,
       c.access_token AS o_access_token, c.token_type AS o_token_type, c.expires_at AS o_expires_at,
       c.scopes AS o_scopes, c.last_failed_at AS o_last_failed_at, c.last_refreshed_at AS o_last_refreshed_at,
       c.refresh_token IS NOT NULL AS o_has_refresh_token, NULLIF(c.provider_data, '{}'::jsonb) AS o_provider_data,
       c.expiry_buffer_secs AS o_expiry_buffer_secs, c.grant_type AS o_grant_type
FROM connections c
WHERE c.connection_id = $1
