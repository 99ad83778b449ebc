SELECT last_seen_at FROM installations WHERE license_id = $1 AND installation_id = $2
