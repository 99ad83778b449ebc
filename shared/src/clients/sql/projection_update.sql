UPDATE clients SET name = $2, authorize_url = $3, token_url = $4, revoke_url = $5, client_id = $6, redirect_uri = $7,
       scopes = $8, auth_method = $9, pkce = $10, extra_authorize_params = $11, metadata = $12, updated_at = $13,
       version = $14, preset = $15, preset_params = $16, capture = $17, grants = $18, quirks = $19
WHERE id = $1
