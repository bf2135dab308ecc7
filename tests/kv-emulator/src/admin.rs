//! The admin API on the plain-HTTP port: stats, fault injection, a federated-token
//! minter for workload-identity tests, and the App Service managed-identity endpoint.

use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::faults::{FaultSettings, OneShot};
use crate::pipeline::parse_query;
use crate::routing::Operation;
use crate::stats::Sample;

fn respond(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn bad(msg: impl std::fmt::Display) -> Response<Full<Bytes>> {
    respond(400, json!({"error": msg.to_string()}))
}

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Ok(collected) = Limited::new(body, 1024 * 1024).collect().await else {
        return bad("request body too large or unreadable");
    };
    let bytes = collected.to_bytes();
    let path = parts.uri.path().trim_end_matches('/');
    match (&parts.method, path) {
        (&Method::GET, "/health") => respond(200, json!({"ok": true})),
        (&Method::GET, "/stats") => respond(200, app.stats.snapshot()),
        (&Method::POST, "/stats/reset") => {
            app.stats.reset();
            respond(200, json!({"ok": true}))
        }
        (&Method::GET, "/faults") => respond(
            200,
            json!({"settings": app.faults.settings(), "once": app.faults.queued()}),
        ),
        (&Method::PUT, "/faults") => {
            match serde_json::from_slice::<FaultSettings>(if bytes.is_empty() {
                b"{}"
            } else {
                &bytes
            }) {
                Ok(s) => match s.validate() {
                    Ok(()) => {
                        app.faults.set(s.clone());
                        app.reset_throttles();
                        respond(200, json!({"settings": s}))
                    }
                    Err(e) => bad(e),
                },
                Err(e) => bad(e),
            }
        }
        (&Method::DELETE, "/faults") => {
            app.faults.clear();
            app.reset_throttles();
            respond(200, json!({"ok": true}))
        }
        (&Method::POST, "/faults/once") => {
            let shots: Result<Vec<OneShot>, _> = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(a)) => a.into_iter().map(serde_json::from_value).collect(),
                Ok(v) => serde_json::from_value(v).map(|o| vec![o]),
                Err(e) => return bad(e),
            };
            match shots {
                Ok(list) => {
                    for o in &list {
                        if let Err(e) = o.validate() {
                            return bad(e);
                        }
                    }
                    let n = list.len();
                    for o in list {
                        app.faults.push(o);
                    }
                    respond(200, json!({"queued": n, "once": app.faults.queued()}))
                }
                Err(e) => bad(e),
            }
        }
        (&Method::POST, "/clock") => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let Some(step) = v
                .get("advance_s")
                .and_then(Value::as_i64)
                .filter(|s| *s >= 0)
            else {
                return bad("give {\"advance_s\": N} with N >= 0");
            };
            let ahead = crate::ids::advance_clock(step);
            respond(200, json!({"ahead_s": ahead, "now": crate::ids::now()}))
        }
        (&Method::POST, "/federated-token") => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let Some(subject) = v.get("subject").and_then(Value::as_str) else {
                return bad("give {\"subject\": \"...\"}");
            };
            let lifetime = v.get("lifetime_s").and_then(Value::as_u64).unwrap_or(3600);
            match app.issuer.issue_federated(subject, lifetime) {
                Ok(t) => respond(200, json!({"token": t})),
                Err(e) => respond(500, json!({"error": e})),
            }
        }
        (&Method::GET, "/msi/token") => {
            let (resp, principal) = managed_identity(&app, &parts);
            app.stats.record(&Sample {
                operation: Some(Operation::Token.name()),
                key: None,
                principal,
                status: Some(resp.status().as_u16()),
            });
            resp
        }
        _ => respond(
            404,
            json!({"error": format!("no admin route {} {}", parts.method, parts.uri.path())}),
        ),
    }
}

/// App Service managed identity: `GET ?api-version=2019-08-01&resource=R` with the
/// `X-IDENTITY-HEADER` secret (FACTS.md §4.2).
fn managed_identity(
    app: &App,
    parts: &hyper::http::request::Parts,
) -> (Response<Full<Bytes>>, Option<String>) {
    let header = parts
        .headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if header != Some(app.identity_header.as_str()) {
        return (
            respond(
                401,
                json!({"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."}),
            ),
            None,
        );
    }
    if app.faults.settings().token_outage {
        return (
            respond(
                503,
                json!({"statusCode": 503, "message": "The managed identity endpoint is unavailable."}),
            ),
            None,
        );
    }
    let q = parse_query(parts.uri.query());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("api-version") != Some("2019-08-01") {
        return (
            respond(
                400,
                json!({"statusCode": 400, "message": "api-version 2019-08-01 is required."}),
            ),
            None,
        );
    }
    let resource = get("resource")
        .unwrap_or_default()
        .trim_end_matches("/.default")
        .to_string();
    if !app.resources().contains(&resource) {
        return (
            respond(
                400,
                json!({"statusCode": 400, "message": format!("Unknown resource '{resource}'.")}),
            ),
            None,
        );
    }
    if let Some(id) = get("client_id")
        .or_else(|| get("principal_id"))
        .or_else(|| get("object_id"))
    {
        if !id.eq_ignore_ascii_case(&app.mi_client_id) {
            return (
                respond(
                    400,
                    json!({"statusCode": 400, "message": format!("Unable to find identity '{id}'.")}),
                ),
                None,
            );
        }
    }
    let Some(principal) = app.principals.find(&app.mi_client_id) else {
        return (
            respond(
                500,
                json!({"statusCode": 500, "message": "The managed identity is not configured."}),
            ),
            None,
        );
    };
    match app
        .issuer
        .issue(principal, &resource, app.settings.token_lifetime_s, "2")
    {
        Ok((token, exp)) => (
            respond(
                200,
                json!({
                    "access_token": token,
                    "expires_on": exp.to_string(),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": principal.client_id,
                }),
            ),
            Some(principal.client_id.clone()),
        ),
        Err(e) => (respond(500, json!({"statusCode": 500, "message": e})), None),
    }
}
