UPDATE connections SET status = 'revoked', access_token = NULL, refresh_token = NULL, next_attempt_at = NULL,
    updated_at = $2, version = $3
WHERE connection_id = $1
