SELECT installation_id, name, activated_at, last_seen_at FROM installations
WHERE license_id = $1 ORDER BY activated_at, installation_id
