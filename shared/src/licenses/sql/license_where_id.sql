WHERE l.id = $1
