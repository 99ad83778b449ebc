SELECT 1 FROM events WHERE stream_id = $1
  AND type IN ('InstallationActivated', 'InstallationDeactivated') AND data->>'installation_id' = $2 LIMIT 1
