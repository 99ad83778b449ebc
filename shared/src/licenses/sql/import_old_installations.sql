SELECT email, installation_id, activated_at, last_seen FROM installations ORDER BY id
