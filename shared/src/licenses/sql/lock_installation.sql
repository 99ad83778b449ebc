SELECT l.version, i.last_seen_at
FROM licenses l LEFT JOIN installations i ON i.license_id = l.id AND i.installation_id = $2
WHERE l.id = $1 FOR UPDATE OF l
