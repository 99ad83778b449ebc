WHERE l.key_hash = $1
