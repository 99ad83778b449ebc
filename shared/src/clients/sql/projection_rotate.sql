UPDATE clients SET client_secret = $2, updated_at = $3, version = $4 WHERE id = $1
