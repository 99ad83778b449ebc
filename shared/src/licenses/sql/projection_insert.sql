INSERT INTO licenses (id, key_hash, license_key, email, status, max_installations, max_inactive_days,
                      expires_at, metadata, created_at, updated_at, version, entitlements)
VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, $11, $12)
