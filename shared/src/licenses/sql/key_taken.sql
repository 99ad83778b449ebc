SELECT 1 FROM licenses WHERE key_hash = $1
