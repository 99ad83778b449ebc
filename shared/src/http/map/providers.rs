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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let cases: Vec<(PresetError, StatusCode, &str, Option<&str>)> = vec![
            (PresetError::UnknownPreset("nope".into()), StatusCode::NOT_FOUND, "provider_not_found", None),
            (
                PresetError::UnknownParam("tld".into()),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("preset_params.tld"),
            ),
            (
                PresetError::InvalidParam { name: "dc".into(), reason: "must be one of: com, eu".into() },
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("preset_params.dc"),
            ),
        ];
        super::super::assert_maps(cases);
        let unknown = ApiError::from(PresetError::UnknownPreset("<script>".into()));
        assert!(!unknown.detail.contains("<script>"), "a path's preset id is not echoed");
    }
}
