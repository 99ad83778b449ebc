UPDATE connections SET tags = $2, updated_at = $3, version = $4 WHERE connection_id = $1
