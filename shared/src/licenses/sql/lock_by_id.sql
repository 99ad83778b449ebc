SELECT email, status, max_installations, max_inactive_days, expires_at, metadata, entitlements, version
FROM licenses WHERE id = $1 FOR UPDATE
