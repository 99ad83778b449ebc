WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id < $1::uuid)
ORDER BY id DESC LIMIT $2
