UPDATE connections SET status = 'refresh_failing', consecutive_failures = $2, next_attempt_at = $3,
    last_failed_at = $4, last_error = $5, updated_at = $4, version = $6
WHERE connection_id = $1
