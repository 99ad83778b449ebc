//! The README's "Connect Zoho in three commands" walk-through, run as written: each `curl`
//! of the marked block is parsed (method, path, body) and sent to the routers, with the one
//! change a test needs (the preset's URLs pointed at the fake Zoho by explicit overrides)
//! and the browser's consent between commands 2 and 3.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{helpers::call, oauth_world::World};

/// One `curl` of the README: method, path below `$KL`, body text.
struct Curl {
    method: Method,
    path: String,
    body: Option<String>,
}

fn walkthrough() -> Vec<Curl> {
    let readme = include_str!("../../README.md");
    let start = readme.find("<!-- zoho-walkthrough -->").expect("README has the Zoho walk-through");
    let end = readme.find("<!-- /zoho-walkthrough -->").unwrap();
    let block = readme[start..end].replace("\\\n", " ");
    block
        .lines()
        .filter(|l| l.trim_start().starts_with("curl "))
        .map(|line| {
            let method = line
                .split_once("-X ")
                .map_or(Method::GET, |(_, rest)| rest.split_whitespace().next().unwrap().parse().unwrap());
            let path = line.split_once("$KL").unwrap().1.split_whitespace().next().unwrap().to_owned();
            let body = line.split_once("-d '").map(|(_, rest)| rest[..rest.rfind('\'').unwrap()].to_owned());
            Curl { method, path, body }
        })
        .collect()
}

#[tokio::test]
async fn the_readme_connects_zoho_in_three_commands() {
    let commands = walkthrough();
    assert_eq!(commands.len(), 3, "three commands");
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.callback_extra =
            vec![("accounts-server".into(), "https://accounts.zoho.eu".into()), ("location".into(), "eu".into())];
        b.extra = serde_json::from_value(json!({"api_domain": "https://www.zohoapis.eu"})).unwrap();
    });
    let key = Some(w.app.admin_key.as_str());

    // 1. Register from the preset; as the README shows, the preset renders the EU URLs.
    let mut body: Value = serde_json::from_str(commands[0].body.as_deref().unwrap()).unwrap();
    let as_written = call(&w.admin, commands[0].method.clone(), &commands[0].path, key, Some(body.clone())).await;
    assert_eq!(as_written.status, StatusCode::CREATED, "{}", as_written.text);
    assert_eq!(as_written.json["token_url"], "https://accounts.zoho.eu/oauth/v2/token");
    assert_eq!(as_written.json["preset"], "zoho");
    body["authorize_url"] = json!(w.provider.url("/authorize"));
    body["token_url"] = json!(w.provider.url("/token"));
    body["revoke_url"] = json!(w.provider.url("/revoke"));
    body["client_id"] = json!("kl-client");
    body["client_secret"] = json!(w.client_secret);
    body["redirect_uri"] = json!("http://127.0.0.1:9/oauth/callback");
    let created = call(&w.admin, commands[0].method.clone(), &commands[0].path, key, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let client = created.json["id"].as_str().unwrap();

    // 2. Start the connection; the browser consents.
    let text = commands[1].body.as_deref().unwrap().replace("'$CLIENT'", client);
    let started =
        call(&w.tokens, commands[1].method.clone(), &commands[1].path, key, Some(serde_json::from_str(&text).unwrap()))
            .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert!(started.json["authorize_url"].as_str().unwrap().contains("scope=ZohoCRM.modules.ALL"));
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let done = w.callback(&query, "application/json").await;
    assert_eq!(done.json["status"], "connected", "{}", done.text);

    // 3. The token, with the data centre to call.
    let token = call(&w.tokens, commands[2].method.clone(), &commands[2].path, key, None).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert!(token.json["access_token"].as_str().unwrap().starts_with("at-"));
    assert_eq!(
        token.json["provider_data"],
        json!({"api_domain": "https://www.zohoapis.eu", "accounts-server": "https://accounts.zoho.eu", "location": "eu"})
    );
}
