//! The login host (`login.localhost`): Entra ID's client-credentials token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, with the token-outage and one-shot faults), the
//! OpenID configuration and MSAL's instance discovery, and the JWKS of the emulator's
//! token and federation issuers.

use http_body_util::Full;
use hyper::Response;
use hyper::body::Bytes;
use hyper::http::request::Parts;
use serde_json::json;

use crate::app::App;
use crate::auth;
use crate::faults::Action;
use crate::pipeline::plain_response;
use crate::reply::Reply;
use crate::stats::Sample;

/// The token endpoint host: Entra ID's client-credentials flow and its discovery documents.
/// Whether this is a token request (the target of `token` one-shot faults).
pub fn is_token_request(parts: &Parts) -> bool {
    let segs: Vec<&str> = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    parts.method == hyper::Method::POST
        && matches!(segs.as_slice(), [_, o, "v2.0", t] if o.eq_ignore_ascii_case("oauth2") && t.eq_ignore_ascii_case("token"))
}

/// Answers a request to the login host; `fault` is the one-shot fault taken for it.
pub fn handle(
    app: &App,
    parts: &Parts,
    body: &[u8],
    fault: Option<Action>,
    sample: &mut Sample,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let authority = app.authority();
    let tenant = app.issuer.tenant_id.as_str();
    let reply = match (parts.method.as_str(), segs.as_slice()) {
        ("POST", [t, o, v, tok])
            if o.eq_ignore_ascii_case("oauth2")
                && *v == "v2.0"
                && tok.eq_ignore_ascii_case("token") =>
        {
            if app.faults.settings().token_outage {
                auth::entra_error(
                    503,
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                )
            } else if let Some(Action::Respond(st, ra)) = fault {
                let mut r =
                    auth::entra_error(st, "temporarily_unavailable", 90033, "Injected fault.");
                if let Some(s) = ra {
                    r = r.header("Retry-After", s.to_string());
                }
                r
            } else {
                let resources = app.resources();
                let ctx = auth::TokenContext {
                    issuer: &app.issuer,
                    principals: &app.principals,
                    resources: &resources,
                    lifetime_s: app.settings.token_lifetime_s,
                    token_endpoint: format!("{authority}/{t}/oauth2/v2.0/token"),
                };
                let (r, who) = auth::token_endpoint(&ctx, t, body);
                sample.principal = who;
                r
            }
        }
        ("GET", ["federation", ".well-known", "openid-configuration"]) => Reply::ok(json!({
            "issuer": app.issuer.federation_issuer(),
            "jwks_uri": format!("{authority}/federation/.well-known/jwks"),
        })),
        (
            "GET",
            [t, "v2.0", ".well-known", "openid-configuration"]
            | [t, ".well-known", "openid-configuration"],
        ) => Reply::ok(json!({
            "token_endpoint": format!("{authority}/{t}/oauth2/v2.0/token"),
            "authorization_endpoint": format!("{authority}/{t}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{authority}/{t}/oauth2/v2.0/devicecode"),
            "issuer": format!("{authority}/{t}/v2.0"),
            "jwks_uri": format!("{authority}/{t}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "localhost",
        })),
        ("GET", [_, "discovery", "v2.0", "keys"] | ["federation", ".well-known", "jwks"]) => {
            Reply::ok(app.issuer.jwks())
        }
        ("GET", ["common", "discovery", "instance"]) => {
            let host = app.login_host.clone();
            Reply::ok(json!({
                "tenant_discovery_endpoint": format!("{authority}/{tenant}/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }))
        }
        _ => auth::entra_error(
            404,
            "invalid_request",
            90019,
            &format!("No route for {} {path}.", parts.method),
        ),
    };
    finish_plain(reply)
}

fn finish_plain(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = plain_response(reply.status, reply.body);
    for (k, v) in reply.headers {
        if let Ok(val) = hyper::header::HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, val);
        }
    }
    resp
}
