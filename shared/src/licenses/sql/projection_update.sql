UPDATE licenses SET
    email = coalesce($2, email),
    max_installations = coalesce($3, max_installations),
    max_inactive_days = CASE WHEN $4 THEN $5 ELSE max_inactive_days END,
    expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END,
    metadata = coalesce($8, metadata),
    entitlements = coalesce($11, entitlements),
    updated_at = $9, version = $10
WHERE id = $1
