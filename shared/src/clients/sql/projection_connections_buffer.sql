-- The client's expiry buffer, copied to its connections (migration 0007: the token hot path
-- reads it there). Only rows whose copy differs are written.
UPDATE connections SET expiry_buffer_secs = $2
WHERE client_id = $1 AND expiry_buffer_secs IS DISTINCT FROM $2
