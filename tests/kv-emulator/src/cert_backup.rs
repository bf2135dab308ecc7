//! Certificate backup and restore (`POST /certificates/{name}/backup`,
//! `POST /certificates/restore`): every version of the certificate with its managed key's
//! versions, in one blob sealed as a key backup is (`key_backup`), restorable into a vault
//! under a free name.

use serde_json::{Map, Value, json};

use crate::b64;
use crate::certificates::{bundle, lc};
use crate::key_backup::{bad_backup, key_doc, key_from_doc, open, seal};
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{CertAttrs, CertObject, CertVersion};

const CERT_MAGIC: &[u8] = b"KVEMUCB1";

pub fn backup(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let doc = {
        let st = ctx.c.lock();
        let cert = st
            .certs
            .get(&lc(name))
            .filter(|c| !c.versions.is_empty())
            .ok_or_else(|| ApiError::certificate_not_found(name))?;
        let key = st
            .keys
            .get(&lc(name))
            .ok_or_else(|| ApiError::certificate_not_found(name))?;
        let versions: Vec<Value> = cert
            .versions
            .iter()
            .map(|v| {
                json!({
                    "version": v.version,
                    "der": b64::url(&v.der),
                    "chain": v.chain.iter().map(|c| b64::url(c)).collect::<Vec<_>>(),
                    "enabled": v.attrs.enabled,
                    "nbf": v.attrs.nbf,
                    "exp": v.attrs.exp,
                    "created": v.attrs.created,
                    "updated": v.attrs.updated,
                    "tags": v.tags,
                    "content_type": v.content_type,
                    "policy": v.policy,
                })
            })
            .collect();
        json!({"name": cert.name, "versions": versions, "key": key_doc(key)?})
    };
    seal(ctx, CERT_MAGIC, doc)
}

fn cert_from_doc(doc: &Value) -> ApiResult<CertObject> {
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(bad_backup)?;
    let mut versions = Vec::new();
    for v in doc
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(bad_backup)?
    {
        let s = |f: &str| v.get(f).and_then(Value::as_str).ok_or_else(bad_backup);
        let i = |f: &str| v.get(f).and_then(Value::as_i64).ok_or_else(bad_backup);
        let der = |t: &str| b64::decode(t).ok_or_else(bad_backup);
        versions.push(CertVersion {
            version: s("version")?.to_string(),
            der: der(s("der")?)?,
            chain: v
                .get("chain")
                .and_then(Value::as_array)
                .ok_or_else(bad_backup)?
                .iter()
                .map(|c| c.as_str().ok_or_else(bad_backup).and_then(der))
                .collect::<ApiResult<_>>()?,
            attrs: CertAttrs {
                enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                nbf: i("nbf")?,
                exp: i("exp")?,
                created: i("created")?,
                updated: i("updated")?,
            },
            tags: v
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_else(Map::new),
            content_type: s("content_type")?.to_string(),
            policy: v.get("policy").cloned().ok_or_else(bad_backup)?,
        });
    }
    if versions.is_empty() {
        return Err(bad_backup());
    }
    Ok(CertObject {
        name: name.to_string(),
        versions,
        pending: None,
    })
}

pub fn restore(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let doc = open(ctx, CERT_MAGIC)?;
    let cert = cert_from_doc(&doc)?;
    let key = key_from_doc(doc.get("key").ok_or_else(bad_backup)?)?;
    if !key.managed || lc(&key.name) != lc(&cert.name) {
        return Err(bad_backup());
    }
    let name = cert.name.clone();
    let id = lc(&name);
    let mut st = ctx.c.lock();
    if st.deleted_certs.contains_key(&id) || st.deleted_keys.contains_key(&id) {
        return Err(ApiError::conflict(format!(
            "Certificate {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged."
        ))
        .inner("ObjectIsDeletedButRecoverable"));
    }
    if st.certs.contains_key(&id) || st.keys.contains_key(&id) {
        return Err(ApiError::conflict(format!(
            "There is a certificate or key with the same name {name} in the vault; a backup can only be restored under a free name."
        )));
    }
    let current = cert.current().ok_or_else(bad_backup)?;
    let body = bundle(ctx, &cert, current);
    st.keys.insert(id.clone(), key);
    st.certs.insert(id, cert);
    Ok(Reply::ok(body))
}
