INSERT INTO api_keys (id, name, key_hash, scopes, created_at, version)
VALUES ($1, $2, $3, $4, $5, $6)
