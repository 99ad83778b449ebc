SELECT connection_id, client_id, status, expires_at, last_refreshed_at, consecutive_failures, last_error, scopes,
       provider_data, tags, grant_type, created_at, updated_at
FROM connections
WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR connection_id > $3)
  AND ($5::jsonb IS NULL OR tags @> $5)
ORDER BY connection_id LIMIT $4
