//! The cryptographic operations on a key version (sign, verify, encrypt, decrypt, wrap,
//! unwrap) with the service's checks (enabled, key_ops, nbf/exp), and `/rng`.

use std::sync::Arc;

use serde_json::json;

use crate::b64;
use crate::ids;
use crate::keys::{check_usable, lc, not_found};
use crate::params;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::routing::Operation;
use crate::state::Kind;

pub fn crypto(ctx: &Ctx<'_>, op: Operation) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let alg = params::req_str(body, "alg")?;
    let value = params::req_bytes(body, "value")?;
    let digest = if op == Operation::Verify {
        Some(params::req_bytes(body, "digest")?)
    } else {
        None
    };
    let (op_name, time_bound) = match op {
        Operation::Sign => ("sign", true),
        Operation::Verify => ("verify", false),
        Operation::Encrypt => ("encrypt", true),
        Operation::Decrypt => ("decrypt", false),
        Operation::WrapKey => ("wrapKey", true),
        _ => ("unwrapKey", false),
    };
    let (kid, material, kty) = {
        let st = ctx.c.lock();
        let obj = st
            .keys
            .get(&lc(name))
            .ok_or_else(|| not_found(name, None))?;
        let version = ctx.version();
        let v = match version {
            None => obj.current(),
            Some(ver) => obj.find(ver),
        }
        .ok_or_else(|| not_found(name, version))?;
        check_usable(v, op_name, time_bound)?;
        (
            ctx.c.key_id(&obj.name, &v.version),
            Arc::clone(&v.material),
            v.kty.clone(),
        )
    };
    let hsm = ctx.c.kind == Kind::Hsm;
    let body = match op {
        Operation::Sign => {
            let sig = material.sign(alg, &kty, &value)?;
            if hsm {
                json!({"alg": alg, "kid": kid, "value": b64::url(&sig)})
            } else {
                json!({"kid": kid, "value": b64::url(&sig)})
            }
        }
        Operation::Verify => {
            let ok = material.verify(alg, &kty, digest.as_deref().unwrap_or_default(), &value)?;
            if hsm {
                json!({"alg": alg, "kid": kid, "value": ok})
            } else {
                json!({"value": ok})
            }
        }
        Operation::Encrypt | Operation::WrapKey => {
            json!({"kid": kid, "value": b64::url(&material.encrypt(alg, &kty, &value)?)})
        }
        _ => json!({"kid": kid, "value": b64::url(&material.decrypt(alg, &kty, &value)?)}),
    };
    Ok(Reply::ok(body))
}

pub fn rng(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    if ctx.c.kind != Kind::Hsm {
        return Err(ApiError::bad_parameter(
            "Random bytes are only available from a Managed HSM.",
        ));
    }
    let body = params::object(ctx.body, "request body")?;
    let count = params::opt_i64(body, "count")?
        .ok_or_else(|| ApiError::bad_parameter("The parameter 'count' is required."))?;
    let n = usize::try_from(count)
        .ok()
        .filter(|n| (1..=128).contains(n))
        .ok_or_else(|| {
            ApiError::bad_parameter(format!("Invalid count {count}: it must be from 1 to 128."))
        })?;
    Ok(Reply::ok(json!({"value": b64::url(&ids::random_bytes(n))})))
}
