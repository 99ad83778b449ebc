SELECT c.client_id, c.status, c.access_token, c.refresh_token, c.token_type, c.expires_at, c.scopes,
       c.last_refreshed_at, c.last_failed_at, c.next_attempt_at, c.consecutive_failures,
       c.refresh_token_used_at, c.version, c.grant_type, c.provider_data,
       cl.token_url, cl.revoke_url, cl.client_id AS provider_client_id, cl.client_secret, cl.auth_method,
       cl.redirect_uri, cl.capture, cl.quirks
FROM connections c JOIN clients cl ON cl.id = c.client_id
WHERE c.connection_id = $1
FOR UPDATE OF c
