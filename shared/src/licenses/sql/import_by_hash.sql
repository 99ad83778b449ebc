SELECT id, status FROM licenses WHERE key_hash = $1
