//! AWS SDK clients as a Lambda function needs them: region and credentials from the
//! environment, requests over the HTTP client the functions already carry.
//!
//! Owns how the Secrets Manager and EventBridge clients are configured. Not `aws-config`'s
//! default chain: in Lambda the region and the execution role's credentials are environment
//! variables, and the chain's other sources (profiles, SSO, web identity through STS, instance
//! metadata) would only add code to every binary. Not the SDK's default HTTP client either:
//! it brings a second hyper client with HTTP/2, while every function already links reqwest
//! (HTTP/1.1 over rustls) for providers and custom resources. Building a client does no I/O.
//!
//! Environment: `AWS_REGION` (or `AWS_DEFAULT_REGION`); `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; `AWS_ENDPOINT_URL_<SERVICE>` or
//! `AWS_ENDPOINT_URL` for an emulator, as the SDKs read them.

use std::{fmt, time::Duration};

use aws_credential_types::{
    Credentials,
    provider::{self, ProvideCredentials, error::CredentialsError},
};
use aws_smithy_runtime_api::{
    client::{
        behavior_version::BehaviorVersion,
        http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
            SharedHttpConnector,
        },
        orchestrator::{HttpRequest, HttpResponse},
        result::ConnectorError,
        runtime_components::RuntimeComponents,
    },
    http::StatusCode,
};
use aws_smithy_types::{body::SdkBody, timeout::TimeoutConfig};
use aws_types::{SdkConfig, region::Region, sdk_config::SharedCredentialsProvider};

/// Connecting to an AWS endpoint; the SDK's own default is 3.1 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of an operation, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// An operation with its retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(12);

/// A Secrets Manager client for this environment.
pub fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config("SECRETS_MANAGER"))
}

/// An EventBridge client for this environment.
pub fn eventbridge() -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&sdk_config("EVENTBRIDGE"))
}

/// The configuration every service client is built from; `service_env` is the service's
/// suffix in `AWS_ENDPOINT_URL_<SERVICE>`.
fn sdk_config(service_env: &str) -> SdkConfig {
    let env = Settings::from_env(service_env);
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentCredentials))
        .http_client(env.http)
        .timeout_config(env.timeouts)
        .region(env.region);
    config.set_endpoint_url(env.endpoint_url);
    config.build()
}

/// An environment variable, unless unset or blank.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What every client takes from the environment.
struct Settings {
    region: Option<Region>,
    endpoint_url: Option<String>,
    http: SharedHttpClient,
    timeouts: TimeoutConfig,
}

impl Settings {
    /// `service_env` is the service's suffix in `AWS_ENDPOINT_URL_<SERVICE>`.
    fn from_env(service_env: &str) -> Self {
        Self::from_vars(service_env, env_var)
    }

    fn from_vars(service_env: &str, var: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).map(Region::new),
            endpoint_url: var(&format!("AWS_ENDPOINT_URL_{service_env}")).or_else(|| var("AWS_ENDPOINT_URL")),
            http: SharedHttpClient::new(Reqwest::new()),
            timeouts: TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        }
    }
}

/// The execution role's credentials, which Lambda puts in the environment (read on each
/// use; the SDK caches them).
#[derive(Debug)]
struct EnvironmentCredentials;

impl EnvironmentCredentials {
    fn load(var: impl Fn(&str) -> Option<String>) -> provider::Result {
        let (Some(access_key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            return Err(CredentialsError::not_loaded(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the execution role)",
            ));
        };
        Ok(Credentials::new(access_key_id, secret, var("AWS_SESSION_TOKEN"), None, "environment"))
    }
}

impl ProvideCredentials for EnvironmentCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::ready(Self::load(env_var))
    }
}

/// The SDK's requests sent with reqwest. Operation bodies here are always in memory
/// (JSON of a few kilobytes); a streaming body is refused rather than buffered.
#[derive(Clone)]
struct Reqwest {
    client: Option<reqwest::Client>,
}

impl fmt::Debug for Reqwest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reqwest")
    }
}

impl Reqwest {
    fn new() -> Self {
        // Redirects are never part of an AWS API exchange. A client that cannot be built
        // (no TLS roots) fails each call with the reason instead of panicking at start.
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the HTTP client for AWS"))
            .ok();
        Self { client }
    }
}

impl HttpClient for Reqwest {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Reqwest {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client =
                client.ok_or_else(|| ConnectorError::other("the HTTP client could not be built".into(), None))?;
            send(&client, request).await
        })
    }
}

async fn send(client: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| ConnectorError::other("streaming request bodies are not supported".into(), None))?
        .to_vec();
    let mut builder = client.request(method, request.uri());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let response = builder.body(body).send().await.map_err(connector_error)?;
    let status =
        StatusCode::try_from(response.status().as_u16()).map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(connector_error)?;
    let mut out = HttpResponse::new(status, SdkBody::from(bytes));
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            out.headers_mut().append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(out)
}

/// Timeouts and I/O errors are retryable for the SDK; anything else is not.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(Box::new(e))
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(Box::new(e))
    } else {
        ConnectorError::other(Box::new(e), None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned().filter(|v| !v.trim().is_empty())
    }

    #[test]
    fn the_service_endpoint_wins_over_the_general_one_and_region_falls_back() {
        let s = Settings::from_vars(
            "SECRETS_MANAGER",
            vars(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:2"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ]),
        );
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(s.region.as_ref().map(|r| r.as_ref()), Some("eu-west-1"));
        let s = Settings::from_vars(
            "EVENTBRIDGE",
            vars(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("AWS_REGION", "us-east-2"),
                ("AWS_DEFAULT_REGION", "x"),
            ]),
        );
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(s.region.as_ref().map(|r| r.as_ref()), Some("us-east-2"));
        assert!(Settings::from_vars("EVENTBRIDGE", vars(&[("AWS_ENDPOINT_URL", " ")])).endpoint_url.is_none());
    }

    #[test]
    fn credentials_come_from_the_environment_or_a_clear_error() {
        let creds = EnvironmentCredentials::load(vars(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("AWS_SESSION_TOKEN", "session"),
        ]))
        .unwrap();
        assert_eq!(creds.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(creds.session_token(), Some("session"));
        assert!(!format!("{creds:?}").contains("wJalrXUtnFEMI"), "the secret key is redacted in Debug");
        let err = EnvironmentCredentials::load(vars(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")])).unwrap_err();
        let message = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
        assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
    }
}
