-- Placeholder until the licenses branch brings 0003_license_entitlements.sql (which replaces this file).
SELECT 1;
