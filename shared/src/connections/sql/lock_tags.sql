SELECT version, status FROM connections WHERE connection_id = $1 FOR UPDATE
