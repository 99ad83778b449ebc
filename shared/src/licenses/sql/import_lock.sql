SELECT version, max_installations, (SELECT count(*) FROM installations WHERE license_id = $1) AS used
FROM licenses WHERE id = $1 FOR UPDATE
