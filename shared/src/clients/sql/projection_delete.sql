UPDATE clients SET deleted_at = $2, updated_at = $2, version = $3 WHERE id = $1
