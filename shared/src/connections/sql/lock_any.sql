SELECT 1 FROM connections WHERE connection_id = $1 FOR UPDATE
