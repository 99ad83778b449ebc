INSERT INTO clients (id, name, authorize_url, token_url, revoke_url, client_id, client_secret, redirect_uri, scopes,
                     auth_method, pkce, extra_authorize_params, metadata, created_at, updated_at, version,
                     preset, preset_params, capture, grants, quirks)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, $18, $19, $20)
