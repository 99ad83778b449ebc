UPDATE api_keys SET revoked_at = $2, version = $3 WHERE id = $1
