//! One HTTPS request from arrival to answer: latency, host, route, bearer challenge and
//! token check, injected faults, api-version, body, RBAC, throttling, then the handler.
//! Every answer gets the service's headers; every request is counted.

use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::app::App;
use crate::faults::Action;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::routing::{self, Operation, RouteError};
use crate::state::{Container, Kind};
use crate::stats::Sample;
use crate::throttle::{self, Class};
use crate::{auth, certificates, ids, keys, login, policies, rbac};

/// api-versions the emulator accepts (FACTS.md §1.1, §8.1).
pub const API_VERSIONS: [&str; 16] = [
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6-preview.1",
    "7.6-preview.2",
    "7.6",
    "2025-06-01-preview",
    "2025-07-01",
    "2026-01-01-preview",
    "2026-03-01-preview",
    "2026-04-01",
    "2026-05-01-preview",
    "2026-07-01-preview",
];

/// What to do with a request: answer it, or drop the connection without an answer.
pub enum Outcome {
    Answer(Response<Full<Bytes>>),
    Drop,
}

/// The request as a handler sees it.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub c: &'a Container,
    pub api: &'a str,
    pub body: &'a Value,
    pub query: &'a [(String, String)],
    pub name: Option<&'a str>,
    pub version: Option<&'a str>,
}

impl Ctx<'_> {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Name of the object the route addresses (routes with a name always have one).
    pub fn name(&self) -> ApiResult<&str> {
        self.name
            .ok_or_else(|| ApiError::bad_parameter("The object name is missing."))
    }

    /// The version segment, `None` for the latest (missing or empty segment).
    pub fn version(&self) -> Option<&str> {
        self.version.filter(|v| !v.is_empty())
    }

    /// api-versions from 2026 on report `attributes.key_size` (rec:…latest_with_401).
    pub fn reports_key_size(&self) -> bool {
        self.api.starts_with("2026")
    }
}

fn host_of(parts: &Parts) -> String {
    let raw = parts
        .uri
        .host()
        .map(str::to_string)
        .or_else(|| {
            parts
                .headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let host = raw.rsplit_once(':').map_or(raw.as_str(), |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            raw.as_str()
        }
    });
    host.trim_end_matches('.').to_ascii_lowercase()
}

pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Bodies beyond this are not even drained: the connection is dropped.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the body, keeping at most `max` bytes. A larger body is drained (so that the
/// client can finish sending and read the 400) and reported as too large. `None` when
/// the client went away or sent more than `DRAIN_LIMIT`.
async fn read_body(mut body: Incoming, max: usize) -> Option<(Bytes, bool)> {
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > DRAIN_LIMIT {
            return None;
        }
        if total <= max {
            kept.extend_from_slice(&data);
        }
    }
    if total > max {
        Some((Bytes::new(), true))
    } else {
        Some((Bytes::from(kept), false))
    }
}

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Outcome {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut sample = Sample::default();
    let Some((bytes, too_large)) = read_body(body, app.settings.max_body).await else {
        return Outcome::Drop;
    };
    // Injected latency is the time the client waits for the answer: the work of the
    // request overlaps it, so that the emulator adds nothing on top of it.
    let answer_at = started + app.faults.settings().latency();
    let host = host_of(&parts);
    let outcome = if host == app.login_host {
        sample.operation = Some(Operation::Token.name());
        let fault = login::is_token_request(&parts)
            .then(|| app.faults.take_one_shot(Operation::Token.name()))
            .flatten();
        match fault {
            Some(Action::Reset) => Outcome::Drop,
            Some(Action::Stall(d)) => {
                tokio::time::sleep(d).await;
                Outcome::Drop
            }
            Some(Action::Delay(d)) => {
                tokio::time::sleep(d).await;
                Outcome::Answer(login::handle(&app, &parts, &bytes, None, &mut sample))
            }
            other => Outcome::Answer(login::handle(&app, &parts, &bytes, other, &mut sample)),
        }
    } else if let Some(c) = app.containers.get(&host).cloned() {
        data_plane(&app, &c, &parts, &bytes, too_large, &mut sample, started).await
    } else {
        let e = ApiError::new(
            404,
            "NotFound",
            format!(
                "Unknown host '{host}'. This emulator serves: {}.",
                known_hosts(&app)
            ),
        );
        Outcome::Answer(plain_response(e.status, Some(e.body())))
    };
    sample.status = match &outcome {
        Outcome::Answer(r) => Some(r.status().as_u16()),
        Outcome::Drop => None,
    };
    if app.settings.verbose {
        eprintln!(
            "kv-emulator: {} {}{} -> {}",
            parts.method,
            host,
            parts.uri.path_and_query().map_or("", |p| p.as_str()),
            sample
                .status
                .map_or_else(|| "dropped".to_string(), |s| s.to_string())
        );
    }
    if matches!(outcome, Outcome::Answer(_)) && answer_at > Instant::now() {
        tokio::time::sleep_until(tokio::time::Instant::from_std(answer_at)).await;
    }
    app.stats.record(&sample);
    outcome
}

fn known_hosts(app: &App) -> String {
    let mut hosts: Vec<&str> = app.containers.keys().map(String::as_str).collect();
    hosts.push(&app.login_host);
    hosts.sort_unstable();
    hosts.join(", ")
}

pub fn plain_response(status: u16, body: Option<Value>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let payload = match body {
        Some(v) => {
            b = b.header("Content-Type", "application/json; charset=utf-8");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b = b.header("Cache-Control", "no-store, no-cache");
    b.body(Full::new(payload))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn data_plane(
    app: &App,
    c: &Container,
    parts: &Parts,
    body: &Bytes,
    too_large: bool,
    sample: &mut Sample,
    started: Instant,
) -> Outcome {
    let route = routing::parse(&parts.method, parts.uri.path());
    let op = route.as_ref().map(|r| r.op).ok();
    sample.operation = op.map(Operation::name);
    if let Ok(r) = &route {
        sample.key = r.name.clone();
    }
    let client_request_id = parts
        .headers
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let respond = |result: ApiResult<Reply>, authorized: bool| {
        Outcome::Answer(service_response(
            app,
            c,
            result,
            authorized,
            client_request_id.as_deref(),
            started,
        ))
    };

    // Bearer challenge and token check.
    let auth_header = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = auth_header.and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let caller = match token {
        None => {
            return respond(
                Err(ApiError::unauthorized(
                    "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.",
                )),
                false,
            );
        }
        Some(t) => match app.issuer.verify(t, app.resource(c.kind)) {
            Ok(caller) => caller,
            Err(msg) => return respond(Err(ApiError::unauthorized(msg)), false),
        },
    };
    sample.principal = Some(caller.appid.clone());

    // Injected faults hit authenticated requests.
    let fault = op
        .and_then(|o| app.faults.take_one_shot(o.name()))
        .or_else(|| app.faults.draw());
    let mut mangle = None;
    match fault {
        Some(Action::Respond(status, retry_after)) => {
            return respond(Err(ApiError::injected(status, retry_after)), true);
        }
        Some(Action::Reset) => return Outcome::Drop,
        Some(Action::Stall(d)) => {
            tokio::time::sleep(d).await;
            return Outcome::Drop;
        }
        Some(Action::Delay(d)) => tokio::time::sleep(d).await,
        Some(Action::Mangle(m)) => mangle = Some(m),
        None => {}
    }

    let mut result = authorized(app, c, parts, body, too_large, route, &caller).await;
    if let (
        Some(m),
        Ok(Reply {
            body: Some(body), ..
        }),
    ) = (mangle, &mut result)
    {
        m.apply(body);
    }
    respond(result, true)
}

/// Azure RBAC: some role assignment of the caller grants the operation's data action.
fn authorize_rbac(
    app: &App,
    c: &Container,
    route: &routing::Route,
    caller: &auth::Caller,
) -> ApiResult<()> {
    let action = rbac::action(c.kind, route.op);
    let rbac_key = if route.op.is_certificate_route() {
        None
    } else {
        route.name.as_deref()
    };
    if !app
        .rbac
        .allowed(&caller.appid, c.kind, &c.name, rbac_key, &action)
    {
        return Err(rbac::denial(
            c.kind,
            &c.name,
            rbac_key,
            &action,
            &caller.appid,
            &caller.oid,
            &app.issuer.tenant_id,
        ));
    }

    Ok(())
}

async fn authorized(
    app: &App,
    c: &Container,
    parts: &Parts,
    body: &Bytes,
    too_large: bool,
    route: Result<routing::Route, RouteError>,
    caller: &auth::Caller,
) -> ApiResult<Reply> {
    let query = parse_query(parts.uri.query());
    let api = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad_parameter("The 'api-version' query parameter is missing."))?;
    if !API_VERSIONS.contains(&api) {
        return Err(ApiError::bad_parameter(format!(
            "The specified version ({api}) is not recognized. Consider using the latest supported version (2026-04-01)."
        )));
    }
    if too_large {
        return Err(ApiError::bad_parameter(format!(
            "The request body is larger than the {} bytes the service accepts.",
            app.settings.max_body
        )));
    }
    let route = match route {
        Ok(r) => r,
        Err(RouteError::BadName(n)) => {
            return Err(ApiError::bad_parameter(format!(
                "The request URI contains an invalid name: {n}. Names are 1-127 characters of 0-9, a-z, A-Z and -."
            )));
        }
        Err(RouteError::MethodNotAllowed) => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("The requested method {} is not allowed.", parts.method),
            ));
        }
        Err(RouteError::NotFound) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("The requested URI {} does not exist.", parts.uri.path()),
            ));
        }
    };
    if c.kind == Kind::Hsm && route.op.is_certificate_route() {
        return Err(ApiError::bad_parameter(
            "Certificates and secrets are not supported by Managed HSM; only keys are.",
        ));
    }
    let json_body = if route.op.wants_body() {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_parameter(
                "The request body is missing. A JSON object is required.",
            ));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_parameter(format!("The request body is not valid JSON: {e}."))
        })?;
        if !v.is_object() {
            return Err(ApiError::bad_parameter(
                "The request body must be a JSON object.",
            ));
        }
        v
    } else {
        Value::Null
    };

    if c.kind == Kind::Vault && app.policies.governs(&c.name) {
        if let Some((object, permission)) = policies::permission(route.op)
            && !app
                .policies
                .allowed(&caller.appid, &c.name, object, permission)
        {
            return Err(policies::denial(
                object,
                permission,
                &c.name,
                &c.region,
                &caller.appid,
                &caller.oid,
                &app.issuer.tenant_id,
            ));
        }
    } else {
        authorize_rbac(app, c, &route, caller)?;
    }

    admit(app, c, route.op, route.name.as_deref(), &json_body)?;

    let ctx = Ctx {
        app,
        c,
        api,
        body: &json_body,
        query: &query,
        name: route.name.as_deref(),
        version: route.version.as_deref(),
    };
    if route.op == Operation::Unsupported {
        return Err(ApiError::bad_parameter(
            "This operation is not supported by the emulator.",
        ));
    }
    if route.op.is_certificate_route() {
        certificates::handle(&ctx, route.op).await
    } else {
        keys::handle(&ctx, route.op).await
    }
}

/// Throttling: a vault's weighted transaction budget (FACTS.md §6.1).
fn admit(
    app: &App,
    c: &Container,
    op: Operation,
    name: Option<&str>,
    body: &Value,
) -> ApiResult<()> {
    let s = &app.settings;
    let over = app.faults.settings().throttle;
    let (scale, retry_after) = match &over {
        Some(o) => (
            o.scale.unwrap_or(s.throttle_scale),
            o.retry_after.unwrap_or(s.throttle_retry_after),
        ),
        None => (s.throttle_scale, s.throttle_retry_after),
    };
    let enabled =
        (s.throttle_enabled || over.is_some()) && (c.kind == Kind::Vault || s.throttle_hsm);
    if !enabled {
        return Ok(());
    }
    let creates = matches!(
        op,
        Operation::CreateKey
            | Operation::ImportKey
            | Operation::RotateKey
            | Operation::CreateCertificate
            | Operation::ImportCertificate
    );
    let key = if creates {
        // A certificate's key type is in its policy (`policy.key_props.kty`): an HSM-backed
        // certificate creation weighs as an HSM key creation.
        let kty = body
            .get("kty")
            .or_else(|| body.pointer("/policy/key_props/kty"))
            .and_then(Value::as_str)
            .unwrap_or("RSA");
        Some((
            kty.ends_with("-HSM") || c.kind == Kind::Hsm,
            crate::crypto::Family::Rsa { bits: 2048 },
        ))
    } else {
        name.and_then(|n| keys::family_of(c, n))
    };
    let class = if creates {
        Class::Create
    } else {
        Class::Transaction
    };
    let limit = throttle::limit(
        class,
        if op.is_certificate_route() && !creates {
            None
        } else {
            key
        },
    ) * scale;
    let cost = 1.0 / limit.max(1e-9);
    match c
        .throttle()
        .admit(class, cost, Instant::now(), c.kind == Kind::Hsm)
    {
        Ok(()) => Ok(()),
        Err(wait) => Err(ApiError::throttled(retry_after.then(|| {
            wait.as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1)
        }))),
    }
}

/// The service's headers around a handler's result.
fn service_response(
    app: &App,
    c: &Container,
    result: ApiResult<Reply>,
    authorized: bool,
    client_request_id: Option<&str>,
    started: Instant,
) -> Response<Full<Bytes>> {
    let (status, body, mut extra, error) = match result {
        Ok(r) => (r.status, r.body, r.headers, None),
        Err(e) => {
            let hsm_401 = e.status == 401 && c.kind == Kind::Hsm;
            let body = if hsm_401 { None } else { Some(e.body()) };
            (e.status, body, Vec::new(), Some(e))
        }
    };
    if let Some(e) = &error {
        if e.status == 401 {
            extra.push((
                "WWW-Authenticate",
                format!(
                    "Bearer authorization=\"{}/{}\", resource=\"{}\"",
                    app.authority(),
                    app.issuer.tenant_id,
                    app.resource(c.kind)
                ),
            ));
        }
        if let Some(s) = e.retry_after {
            extra.push(("Retry-After", s.to_string()));
        }
    }
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let payload = match &body {
        Some(v) => Bytes::from(v.to_string()),
        None => Bytes::new(),
    };
    if body.is_some() || status == 401 {
        b = b.header("Content-Type", "application/json; charset=utf-8");
    }
    b = b
        .header("Cache-Control", "no-cache")
        .header(
            "Strict-Transport-Security",
            "max-age=31536000;includeSubDomains",
        )
        .header("X-Content-Type-Options", "nosniff")
        .header("x-ms-request-id", ids::guid())
        .header("x-ms-keyvault-region", c.region.as_str())
        .header(
            "x-ms-keyvault-network-info",
            "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
        );
    match c.kind {
        Kind::Vault => {
            b = b
                .header("Pragma", "no-cache")
                .header("Expires", "-1")
                .header("x-ms-keyvault-service-version", "1.9.2851.1");
            // The assignment that granted the request: none on an access-policy vault.
            if authorized && status != 403 && !app.policies.governs(&c.name) {
                b = b.header(
                    "x-ms-keyvault-rbac-assignment-id",
                    "50fa9d94c02a577db66d0fefcba498a7",
                );
            }
        }
        Kind::Hsm => {
            b = b
                .header("Content-Security-Policy", "default-src 'self'")
                .header("X-Frame-Options", "SAMEORIGIN")
                .header(
                    "x-ms-server-latency",
                    started.elapsed().as_millis().to_string(),
                );
        }
    }
    if let Some(id) = client_request_id {
        b = b.header("x-ms-client-request-id", id);
    }
    for (k, v) in extra {
        b = b.header(k, v);
    }
    b.body(Full::new(payload))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
