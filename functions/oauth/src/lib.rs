//! The `oauth` function (DESIGN §6.3): `GET /oauth/callback`, where the user's browser
//! comes back from the provider. Parsing and rendering only; `shared::connections` checks
//! the state, exchanges the code and records the outcome.

use axum::{
    Router,
    extract::{FromRef, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use shared::{
    Context,
    connections::{self, CallbackOutcome, CallbackParams},
    events::Metadata,
    http::{ApiError, Query, RequestId},
    oauth::Provider,
};
use url::Url;

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "oauth";

/// What the handler shares: built once per execution environment.
#[derive(Clone)]
pub struct AppState {
    /// Config, database, secrets.
    pub ctx: Context,
    /// Provider HTTP client.
    pub provider: Provider,
}

impl FromRef<AppState> for Context {
    fn from_ref(state: &AppState) -> Context {
        state.ctx.clone()
    }
}

/// The routes without `/health`, for merging into a combined local server.
pub fn routes(ctx: Context) -> Router {
    let provider = Provider::from_config(ctx.config());
    Router::new().route("/oauth/callback", get(callback)).with_state(AppState { ctx, provider })
}

/// The complete `oauth` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::app::finish(app, &config)
}

/// JSON when the caller asks for it and does not also take HTML (a browser sends both).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    (accept.contains("application/json") || accept.contains("+json")) && !accept.contains("text/html")
}

async fn callback(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    params: Result<Query<CallbackParams>, ApiError>,
) -> Response {
    let json = wants_json(&headers);
    let outcome = match params {
        Ok(Query(params)) => {
            let metadata = Metadata { request_id: Some(request_id), actor: "public".into(), function: FUNCTION.into() };
            connections::complete_authorization(&state.ctx, &state.provider, params, &metadata)
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    let mut response = match outcome {
        Ok(CallbackOutcome::Connected { connection_id, return_to: Some(url) }) => {
            redirect(&url, &[("connection_id", &connection_id), ("status", "connected")])
        }
        Ok(CallbackOutcome::Connected { connection_id, return_to: None }) if json => {
            axum::Json(json!({"connection_id": connection_id, "status": "connected"})).into_response()
        }
        Ok(CallbackOutcome::Connected { connection_id, return_to: None }) => page(
            StatusCode::OK,
            "Connected",
            &format!("Connection <code>{}</code> is connected — you can close this window.", escape(&connection_id)),
        ),
        Ok(CallbackOutcome::Failed { connection_id, error, return_to: Some(url), .. }) => {
            redirect(&url, &[("error", &error), ("connection_id", &connection_id)])
        }
        // The provider's free text (or whatever a browser put in `error_description`) is never
        // shown here: this page is public and the text is not ours. The event keeps it.
        Ok(CallbackOutcome::Failed { connection_id, error, return_to: None, .. }) => {
            let problem = ApiError::bad_request(
                "authorization_failed",
                format!("the authorization of '{connection_id}' failed ({error})"),
            );
            render_error(problem, json)
        }
        Err(e) => render_error(e, json),
    };
    let headers = response.headers_mut();
    shared::http::no_store(headers);
    // The callback URL carries the code: never hand it on as a Referer.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn redirect(return_to: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(return_to) else {
        return ApiError::internal("stored return_to is not a URL").into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => ApiError::internal("return_to is not a valid header value").into_response(),
    }
}

fn render_error(error: ApiError, json: bool) -> Response {
    if json {
        return error.into_response();
    }
    let title = if error.code == "invalid_state" { "Link expired" } else { "Not connected" };
    page(error.status, title, &escape(&error.detail))
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>body{{font:16px system-ui,sans-serif;\
         max-width:36rem;margin:4rem auto;padding:0 1rem}}</style></head><body><h1>{title}</h1><p>{message}</p>\
         </body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let h = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            wants_json(&h)
        };
        assert!(h("application/json"));
        assert!(h("application/problem+json"));
        assert!(!h("text/html,application/xhtml+xml,application/json;q=0.9"));
        assert!(!h("*/*"));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
