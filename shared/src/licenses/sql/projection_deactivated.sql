WITH removed AS (
    DELETE FROM installations WHERE license_id = $1 AND installation_id = $2 RETURNING 1
)
UPDATE licenses SET version = $3, installations_used = installations_used - (SELECT count(*) FROM removed)
WHERE id = $1
