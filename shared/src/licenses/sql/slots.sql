SELECT installation_id, activated_at, last_seen_at FROM installations
WHERE license_id = $1 ORDER BY last_seen_at, activated_at, installation_id
