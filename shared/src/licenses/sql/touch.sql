UPDATE installations SET last_seen_at = now()
WHERE license_id = $1 AND installation_id = $2 RETURNING last_seen_at
