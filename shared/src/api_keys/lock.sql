SELECT version, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE id = $1 FOR UPDATE
