SELECT id, name, scopes, created_at FROM api_keys
WHERE revoked_at IS NULL AND ($1::uuid IS NULL OR id < $1::uuid)
ORDER BY id DESC LIMIT $2
