SELECT l.id, l.email, l.status, l.max_installations, l.max_inactive_days, l.expires_at, l.metadata,
       l.entitlements, l.created_at, l.updated_at, l.installations_used::bigint AS used,
       now() AS now, l.license_key, l.key_hash, l.version
FROM licenses l
