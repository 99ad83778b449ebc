SELECT connection_id, client_id, status, expires_at, last_refreshed_at, consecutive_failures, last_error, scopes,
       provider_data, tags, grant_type, created_at, updated_at
FROM connections WHERE connection_id = $1
