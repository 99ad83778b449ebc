SELECT id, status, expires_at, max_installations, max_inactive_days, entitlements, version, key_hash,
       now() AS now
FROM licenses WHERE key_hash = $1 FOR UPDATE
