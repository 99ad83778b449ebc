SELECT id, email, license_key, expiry_date, created_at, status FROM licenses ORDER BY id
