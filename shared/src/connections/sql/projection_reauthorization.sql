UPDATE connections SET status = 'reauthorization_required', access_token = NULL, refresh_token = NULL,
    next_attempt_at = NULL, last_failed_at = $2, last_error = $3, updated_at = $2, version = $4
WHERE connection_id = $1
