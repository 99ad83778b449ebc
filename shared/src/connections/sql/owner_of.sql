SELECT client_id, status FROM connections WHERE connection_id = $1
