//! kv-load: a loopback load generator for kv-emulator's own throughput. N concurrent
//! clients repeat one operation for a fixed time (bounded), then it prints requests per
//! second, latency percentiles and status counts as JSON.
//!
//! `kv-load READY_FILE [CONCURRENCY] [SECONDS] [OP] [KEY] [vault|hsm]`
//! OP is `sign` (RS256/ES256 by key type), `get_key` or `decrypt` (RSA-OAEP).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn json_of(req: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = resp.text().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(ready_path) = args.get(1) else {
        eprintln!(
            "usage: kv-load READY_FILE [CONCURRENCY] [SECONDS] [sign|get_key|decrypt] [KEY] [vault|hsm]"
        );
        std::process::exit(2);
    };
    let concurrency: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
        .clamp(1, 512);
    let seconds: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 120);
    let op = args.get(4).cloned().unwrap_or_else(|| "sign".into());
    let key = args.get(5).cloned().unwrap_or_else(|| "rsa2048".into());
    let kind = args.get(6).cloned().unwrap_or_else(|| "vault".into());

    let ready: Value =
        serde_json::from_str(&std::fs::read_to_string(ready_path).expect("ready file"))
            .expect("JSON");
    let s = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
    let ca = std::fs::read(s("ca_file")).expect("CA file");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let resource = s(if kind == "hsm" {
        "hsm_resource"
    } else {
        "vault_resource"
    });
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        form_escape(&s("client_id")),
        form_escape(&s("client_secret")),
        form_escape(&format!("{resource}/.default"))
    );
    let token_url = format!(
        "{}/{}/oauth2/v2.0/token",
        s("authority_host"),
        s("tenant_id")
    );
    let tok = json_of(
        client
            .post(&token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
        "token request",
    )
    .await;
    let token = format!(
        "Bearer {}",
        tok["access_token"].as_str().expect("access_token")
    );
    let base = s(if kind == "hsm" {
        "hsm_url"
    } else {
        "vault_url"
    });
    let key_url = format!("{base}/keys/{key}");
    let info = json_of(
        client
            .get(format!("{key_url}?api-version=7.5"))
            .header("Authorization", &token),
        "get key",
    )
    .await;
    let is_ec = info["key"]["kty"]
        .as_str()
        .unwrap_or_default()
        .starts_with("EC");
    let digest = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let (method, url, payload) = match op.as_str() {
        "get_key" => ("GET", format!("{key_url}?api-version=7.5"), None),
        "decrypt" => {
            let req = client
                .post(format!("{key_url}/encrypt?api-version=7.5"))
                .header("Authorization", &token)
                .header("Content-Type", "application/json")
                .body(json!({"alg": "RSA-OAEP", "value": "AQIDBA"}).to_string());
            let ct = json_of(req, "encrypt").await;
            (
                "POST",
                format!("{key_url}//decrypt?api-version=7.5"),
                Some(json!({"alg": "RSA-OAEP", "value": ct["value"]})),
            )
        }
        _ => {
            let alg = if is_ec { "ES256" } else { "RS256" };
            (
                "POST",
                format!("{key_url}//sign?api-version=7.5"),
                Some(json!({"alg": alg, "value": digest})),
            )
        }
    };
    let payload = Arc::new(payload.map(|p| p.to_string()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, payload) =
            (client.clone(), url.clone(), token.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut req = if method == "GET" {
                    client.get(&url)
                } else {
                    client.post(&url)
                };
                req = req.header("Authorization", &token);
                if let Some(p) = payload.as_ref() {
                    req = req
                        .header("Content-Type", "application/json")
                        .body(p.clone());
                }
                let status = match req.send().await {
                    Ok(r) => {
                        let st = r.status().as_u16().to_string();
                        let _ = r.bytes().await;
                        st
                    }
                    Err(_) => "error".to_string(),
                };
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(status).or_default() += 1;
            }
            (lat, statuses)
        }));
    }
    let mut all = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        if let Ok((lat, st)) = t.await {
            all.extend(lat);
            for (k, v) in st {
                *statuses.entry(k).or_default() += v;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all.get(rank(all.len(), p)).copied().unwrap_or(0.0);
    let out = json!({
        "op": op, "key": key, "kind": kind, "concurrency": concurrency, "seconds": elapsed,
        "requests": all.len(), "rps": (all.len() as f64 / elapsed).round(),
        "p50_ms": (pct(0.5) * 10.0).round() / 10.0, "p99_ms": (pct(0.99) * 10.0).round() / 10.0,
        "statuses": statuses,
    });
    println!("{out}");
}

/// The index of percentile `p` (in [0, 1]) among `len` sorted values (nearest rank).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "p is in [0, 1], so the rank is in [0, len - 1]; `as` saturates anyway"
)]
fn rank(len: usize, p: f64) -> usize {
    ((len as f64 - 1.0) * p).round() as usize
}
