SELECT cl.capture FROM connections c JOIN clients cl ON cl.id = c.client_id WHERE c.connection_id = $1
