UPDATE connections SET status = 'active', access_token = $2, refresh_token = coalesce($3, refresh_token),
    token_type = $4, expires_at = $5, scopes = $6, provider_data = provider_data || $7, last_refreshed_at = $8,
    refresh_token_used_at = $8, consecutive_failures = 0, next_attempt_at = NULL, last_failed_at = NULL,
    last_error = NULL, updated_at = $8, version = $9
WHERE connection_id = $1
