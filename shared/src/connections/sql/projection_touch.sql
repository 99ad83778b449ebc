UPDATE connections SET updated_at = $2, version = $3 WHERE connection_id = $1
