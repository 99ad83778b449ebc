SELECT count(*) AS in_use FROM connections WHERE client_id = $1 AND status <> 'revoked'
