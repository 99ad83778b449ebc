UPDATE installations SET last_seen_at = greatest(last_seen_at, $3)
WHERE license_id = $1 AND installation_id = $2
