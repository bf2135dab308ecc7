//! The secret linked to a certificate (`GET /secrets/{name}[/{version}]`): the PFX or PEM
//! of the certificate version, with the private key only when the policy makes it
//! exportable.

use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::b64;
use crate::certificates::{PEM, cert_attrs_json, find, lc};
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};

pub fn secret(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let st = ctx.c.lock();
    let version = ctx.version();
    let not_found = || match version {
        Some(v) => ApiError::secret_not_found(&format!("{name}/{v}")),
        None => ApiError::secret_not_found(name),
    };
    let (obj, v) = find(&st, name, version).map_err(|_| not_found())?;
    if !v.attrs.enabled {
        return Err(
            ApiError::forbidden("Operation get is not allowed on a disabled secret.")
                .inner("SecretDisabled"),
        );
    }
    let key = st
        .keys
        .get(&lc(name))
        .and_then(|k| k.find(&v.version))
        .ok_or_else(not_found)?;
    let exportable = v
        .policy
        .pointer("/key_props/exportable")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let err =
        |e: openssl::error::ErrorStack| ApiError::new(500, "InternalServerError", e.to_string());
    let cert = X509::from_der(&v.der).map_err(err)?;
    let chain: Vec<X509> = v
        .chain
        .iter()
        .filter_map(|d| X509::from_der(d).ok())
        .collect();
    let value = if v.content_type == PEM {
        let mut text = String::new();
        if exportable {
            let pem = key
                .material
                .pkey()
                .private_key_to_pem_pkcs8()
                .map_err(err)?;
            text.push_str(&String::from_utf8_lossy(&pem));
        }
        for c in std::iter::once(&cert).chain(chain.iter()) {
            text.push_str(&String::from_utf8_lossy(&c.to_pem().map_err(err)?));
        }
        text
    } else {
        let mut b = Pkcs12::builder();
        b.cert(&cert);
        if exportable {
            b.pkey(key.material.pkey());
        }
        if !chain.is_empty() {
            let mut stack = Stack::new().map_err(err)?;
            for c in chain {
                stack.push(c).map_err(err)?;
            }
            b.ca(stack);
        }
        b64::std(&b.build2("").map_err(err)?.to_der().map_err(err)?)
    };
    let base = &ctx.c.base_url;
    let mut body = json!({
        "value": value,
        "contentType": v.content_type,
        "id": format!("{base}/secrets/{}/{}", obj.name, v.version),
        "managed": true,
        "attributes": cert_attrs_json(ctx, &v.attrs),
        "kid": format!("{base}/keys/{}/{}", obj.name, v.version),
    });
    if !v.tags.is_empty() {
        body["tags"] = Value::Object(v.tags.clone());
    }
    Ok(Reply::ok(body))
}
