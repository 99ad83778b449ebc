SELECT version FROM clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE
