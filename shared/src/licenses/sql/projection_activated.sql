WITH added AS (
    INSERT INTO installations (license_id, installation_id, name, activated_at, last_seen_at)
    VALUES ($1, $2, $3, $4, $4)
)
UPDATE licenses SET version = $5, installations_used = installations_used + 1 WHERE id = $1
