//! `providers::PresetError` as problem+json: 404 `provider_not_found` for an unknown preset
//! id in a path, 400 `invalid_request` naming `preset_params.<name>` otherwise.

use crate::{http::ApiError, providers::PresetError};

impl From<PresetError> for ApiError {
    fn from(e: PresetError) -> Self {
        match &e {
            PresetError::UnknownPreset(_) => ApiError::not_found("provider_not_found", "no such provider preset"),
            PresetError::UnknownParam(name) | PresetError::InvalidParam { name, .. } => {
                ApiError::invalid_field(format!("preset_params.{name}"), e.to_string())
            }
        }
    }
}
