//! Applying a `PATCH /v1/clients/{id}` body to a client's current settings: every field the
//! body names replaces the old value; the result is validated as a whole afterwards.

use super::{
    Error,
    model::{ClientPatch, ClientSettings},
    preset,
};

impl ClientPatch {
    /// `current` with every field this patch names replaced (the secret is not a setting and
    /// is left to the caller). New `preset_params` render the preset's URLs again first, so
    /// URLs given in the same patch still win. Not yet validated.
    pub fn apply(&self, current: &ClientSettings) -> Result<ClientSettings, Error> {
        let mut s = current.clone();
        if let Some(params) = &self.preset_params {
            let Some(id) = &current.preset else {
                return Err(Error::NoPreset);
            };
            let r = preset::resolve(id, params)?;
            s.authorize_url = r.authorize_url;
            s.token_url = r.token_url;
            s.revoke_url = r.revoke_url;
            s.preset_params = r.preset_params;
        }
        if let Some(v) = &self.name {
            s.name = v.clone();
        }
        if let Some(v) = &self.authorize_url {
            s.authorize_url = v.clone();
        }
        if let Some(v) = &self.token_url {
            s.token_url = v.clone();
        }
        if let Some(v) = &self.revoke_url {
            s.revoke_url = v.clone();
        }
        if let Some(v) = &self.client_id {
            s.client_id = v.clone();
        }
        if let Some(v) = &self.redirect_uri {
            s.redirect_uri = v.clone();
        }
        if let Some(v) = &self.scopes {
            s.scopes = v.clone();
        }
        if let Some(v) = self.auth_method {
            s.auth_method = v;
        }
        if let Some(v) = self.pkce {
            s.pkce = v;
        }
        if let Some(v) = &self.extra_authorize_params {
            s.extra_authorize_params = v.clone();
        }
        if let Some(v) = &self.metadata {
            s.metadata = v.clone();
        }
        if let Some(v) = &self.capture {
            s.capture = v.clone();
        }
        if let Some(v) = &self.grants {
            s.grants = v.clone();
        }
        if let Some(v) = &self.quirks {
            s.quirks = v.clone();
        }
        Ok(s)
    }
}
