SELECT id, name, authorize_url, token_url, revoke_url, client_id, redirect_uri, scopes, auth_method, pkce,
       extra_authorize_params, metadata, created_at, updated_at, version, client_secret, preset, preset_params,
       capture, grants, quirks
FROM clients
