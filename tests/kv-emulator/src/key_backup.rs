//! Key backup and restore: an opaque blob, AES-256-GCM under the emulator's backup key,
//! restorable into the same kind of container under a free name. A key that backs a
//! certificate is backed up with its certificate (`cert_backup`), as the service requires.

use std::sync::Arc;

use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde_json::{Value, json};

use crate::b64;
use crate::crypto::KeyMaterial;
use crate::ids;
use crate::keys::{bundle, deleted_conflict, lc, not_found};
use crate::params;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{KeyAttrs, KeyObject, KeyVersion};

const KEY_MAGIC: &[u8] = b"KVEMUBK1";

/// A key and all its versions, private material included, as a backup holds it.
pub fn key_doc(obj: &KeyObject) -> ApiResult<Value> {
    let mut versions = Vec::new();
    for v in &obj.versions {
        versions.push(json!({
            "version": v.version,
            "kty": v.kty,
            "key_ops": v.key_ops,
            "pkcs8": b64::url(&v.material.private_pkcs8_der()?),
            "enabled": v.attrs.enabled,
            "nbf": v.attrs.nbf,
            "exp": v.attrs.exp,
            "created": v.attrs.created,
            "updated": v.attrs.updated,
            "exportable": v.attrs.exportable,
            "tags": v.tags,
            "release_policy": v.release_policy,
        }));
    }
    Ok(json!({"name": obj.name, "managed": obj.managed, "versions": versions}))
}

/// `doc` (made by `key_doc` in a container of `kind`) sealed under the backup key: what
/// the service's `value` carries. `magic` tells a key backup from a certificate backup.
pub fn seal(ctx: &Ctx<'_>, magic: &[u8], mut doc: Value) -> ApiResult<Reply> {
    doc["kind"] = ctx.c.kind.as_str().into();
    let iv = ids::random_bytes(12);
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        &ctx.app.backup_key,
        Some(&iv),
        magic,
        doc.to_string().as_bytes(),
        &mut tag,
    )
    .map_err(|e| {
        ApiError::new(
            500,
            "InternalServerError",
            format!("backup encryption failed: {e}"),
        )
    })?;
    let mut blob = magic.to_vec();
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&tag);
    blob.extend_from_slice(&ct);
    Ok(Reply::ok(json!({"value": b64::url(&blob)})))
}

pub fn bad_backup() -> ApiError {
    ApiError::bad_parameter("Backup blob contains invalid or corrupt version.")
}

/// The document of a restore request's blob, checked to be a `magic` backup made in a
/// container of this kind.
pub fn open(ctx: &Ctx<'_>, magic: &[u8]) -> ApiResult<Value> {
    let body = params::object(ctx.body, "request body")?;
    let blob = params::req_bytes(body, "value")?;
    if blob.len() < magic.len() + 28 || !blob.starts_with(magic) {
        return Err(bad_backup());
    }
    let rest = &blob[magic.len()..];
    let (iv, rest) = rest.split_at(12);
    let (tag, ct) = rest.split_at(16);
    let plain = decrypt_aead(
        Cipher::aes_256_gcm(),
        &ctx.app.backup_key,
        Some(iv),
        magic,
        ct,
        tag,
    )
    .map_err(|_| bad_backup())?;
    let doc: Value = serde_json::from_slice(&plain).map_err(|_| bad_backup())?;
    if doc.get("kind").and_then(Value::as_str) != Some(ctx.c.kind.as_str()) {
        return Err(ApiError::bad_parameter(
            "The backup was made in a different kind of container (vault vs. Managed HSM) and cannot be restored here.",
        ));
    }
    Ok(doc)
}

pub fn backup(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let doc = {
        let st = ctx.c.lock();
        let obj = st
            .keys
            .get(&lc(name))
            .ok_or_else(|| not_found(name, None))?;
        if obj.managed {
            // The service's answer, as quoted in a public report (Azure/azure-powershell#20142).
            return Err(ApiError::forbidden(
                "Operation \"backup\" is not allowed on this Key, since it is associated with a certificate. Perform the operation on the corresponding certificate. For more information refer to https://docs.microsoft.com/en-us/azure/key-vault/certificates/about-certificates#composition-of-a-certificate",
            ));
        }
        key_doc(obj)?
    };
    seal(ctx, KEY_MAGIC, doc)
}

/// The key a backup document holds.
pub fn key_from_doc(doc: &Value) -> ApiResult<KeyObject> {
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(bad_backup)?
        .to_string();
    let managed = doc.get("managed").and_then(Value::as_bool).unwrap_or(false);
    let mut versions = Vec::new();
    for v in doc
        .get("versions")
        .and_then(Value::as_array)
        .ok_or_else(bad_backup)?
    {
        let s = |f: &str| {
            v.get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(bad_backup)
        };
        let der = b64::decode(&s("pkcs8")?).ok_or_else(bad_backup)?;
        versions.push(KeyVersion {
            version: s("version")?,
            material: Arc::new(KeyMaterial::from_pkcs8_der(&der)?),
            kty: s("kty")?,
            key_ops: v
                .get("key_ops")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            attrs: KeyAttrs {
                enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                nbf: v.get("nbf").and_then(Value::as_i64),
                exp: v.get("exp").and_then(Value::as_i64),
                created: v
                    .get("created")
                    .and_then(Value::as_i64)
                    .unwrap_or_else(ids::now),
                updated: v
                    .get("updated")
                    .and_then(Value::as_i64)
                    .unwrap_or_else(ids::now),
                exportable: v
                    .get("exportable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            tags: v
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            release_policy: v.get("release_policy").filter(|p| !p.is_null()).cloned(),
        });
    }
    let obj = KeyObject {
        name,
        versions,
        managed,
        rotation_policy: None,
    };
    obj.current().ok_or_else(bad_backup)?;
    Ok(obj)
}

pub fn restore(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let obj = key_from_doc(&open(ctx, KEY_MAGIC)?)?;
    let name = obj.name.clone();
    let key = lc(&name);
    let mut st = ctx.c.lock();
    if st.deleted_keys.contains_key(&key) {
        return Err(deleted_conflict(&name));
    }
    if st.keys.contains_key(&key) {
        return Err(ApiError::conflict(format!(
            "There is a key with the same name {name} in the vault; a backup can only be restored under a free name."
        )));
    }
    let current = obj.current().ok_or_else(bad_backup)?;
    let body = bundle(ctx, &obj, current)?;
    st.keys.insert(key, obj);
    Ok(Reply::ok(body))
}
