//! Key handlers: the dispatch of every key route, rendering (KeyBundle, KeyItem), the
//! checks shared with the other key modules, create, import, get, list (paged), update,
//! rotate and rotation policy. Deletion, backup and the cryptographic operations live in
//! `key_deletion`, `key_backup` and `key_crypto`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::crypto::{Curve, Family, KeyMaterial, RSA_SIZES};
use crate::ids;
use crate::paging::page;
use crate::params;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::routing::Operation;
use crate::state::{Container, ContainerState, Deleted, KeyAttrs, KeyObject, KeyVersion, Kind};
use crate::{key_backup, key_crypto, key_deletion};

pub const RSA_OPS: [&str; 6] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
];
pub const EC_OPS: [&str; 2] = ["sign", "verify"];

pub fn supported_ops(family: Family) -> &'static [&'static str] {
    match family {
        Family::Rsa { .. } => &RSA_OPS,
        Family::Ec(_) => &EC_OPS,
    }
}

pub fn default_ops(family: Family) -> Vec<String> {
    supported_ops(family)
        .iter()
        .map(std::string::ToString::to_string)
        .collect()
}

pub async fn handle(ctx: &Ctx<'_>, op: Operation) -> ApiResult<Reply> {
    use Operation as O;
    match op {
        O::CreateKey => create(ctx).await,
        O::ImportKey => import(ctx),
        O::GetKey => get(ctx),
        O::ListKeys => list(ctx),
        O::ListKeyVersions => list_versions(ctx),
        O::UpdateKey => update(ctx),
        O::DeleteKey => key_deletion::delete(ctx),
        O::GetDeletedKey => key_deletion::get_deleted(ctx),
        O::ListDeletedKeys => key_deletion::list_deleted(ctx),
        O::RecoverKey => key_deletion::recover(ctx),
        O::PurgeKey => key_deletion::purge(ctx),
        O::BackupKey => key_backup::backup(ctx),
        O::RestoreKey => key_backup::restore(ctx),
        O::RotateKey => rotate(ctx).await,
        O::GetRotationPolicy => rotation_policy(ctx, false),
        O::SetRotationPolicy => rotation_policy(ctx, true),
        O::Sign | O::Verify | O::Encrypt | O::Decrypt | O::WrapKey | O::UnwrapKey => {
            key_crypto::crypto(ctx, op)
        }
        O::Rng => key_crypto::rng(ctx),
        _ => Err(ApiError::bad_parameter(
            "This operation is not supported by the emulator.",
        )),
    }
}

pub fn lc(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// For throttling: whether the key is HSM-backed and its type, if it exists.
pub fn family_of(c: &Container, name: &str) -> Option<(bool, Family)> {
    let st = c.lock();
    let v = st.keys.get(&lc(name))?.current()?;
    Some((v.is_hsm() || c.kind == Kind::Hsm, v.material.family))
}

// ---------------------------------------------------------------------------------
// Rendering

pub fn attributes(ctx: &Ctx<'_>, v: &KeyVersion) -> Value {
    let mut a = Map::new();
    a.insert("enabled".into(), v.attrs.enabled.into());
    if let Some(n) = v.attrs.nbf {
        a.insert("nbf".into(), n.into());
    }
    if let Some(e) = v.attrs.exp {
        a.insert("exp".into(), e.into());
    }
    if ctx.reports_key_size() {
        if let Family::Rsa { bits } = v.material.family {
            a.insert("key_size".into(), bits.into());
        }
    }
    a.insert("created".into(), v.attrs.created.into());
    a.insert("updated".into(), v.attrs.updated.into());
    a.insert("recoveryLevel".into(), ctx.app.recovery_level().into());
    a.insert(
        "recoverableDays".into(),
        ctx.app.settings.recoverable_days.into(),
    );
    a.insert("exportable".into(), v.attrs.exportable.into());
    if ctx.c.kind == Kind::Vault {
        a.insert(
            "hsmPlatform".into(),
            (if !v.is_hsm() {
                "0"
            } else if ctx.c.hsm_platform_1 {
                "1"
            } else {
                "2"
            })
            .into(),
        );
    }
    Value::Object(a)
}

pub fn bundle(ctx: &Ctx<'_>, obj: &KeyObject, v: &KeyVersion) -> ApiResult<Value> {
    let mut key = Map::new();
    key.insert("kid".into(), ctx.c.key_id(&obj.name, &v.version).into());
    key.insert("kty".into(), v.kty.clone().into());
    key.insert("key_ops".into(), json!(v.key_ops));
    v.material.public_jwk(&mut key)?;
    let mut b = Map::new();
    b.insert("key".into(), Value::Object(key));
    b.insert("attributes".into(), attributes(ctx, v));
    if !v.tags.is_empty() {
        b.insert("tags".into(), Value::Object(v.tags.clone()));
    }
    if obj.managed {
        b.insert("managed".into(), true.into());
    }
    if let Some(p) = &v.release_policy {
        b.insert("release_policy".into(), p.clone());
    }
    Ok(Value::Object(b))
}

pub fn item(ctx: &Ctx<'_>, obj: &KeyObject, v: &KeyVersion, with_version: bool) -> Value {
    let kid = if with_version {
        ctx.c.key_id(&obj.name, &v.version)
    } else {
        format!("{}/keys/{}", ctx.c.base_url, obj.name)
    };
    let mut m = Map::new();
    m.insert("kid".into(), kid.into());
    m.insert("attributes".into(), attributes(ctx, v));
    if !v.tags.is_empty() {
        m.insert("tags".into(), Value::Object(v.tags.clone()));
    }
    if obj.managed {
        m.insert("managed".into(), true.into());
    }
    Value::Object(m)
}

pub fn add_deleted_fields(
    ctx: &Ctx<'_>,
    mut v: Value,
    name: &str,
    d: &Deleted<KeyObject>,
) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "recoveryId".into(),
            format!("{}/deletedkeys/{name}", ctx.c.base_url).into(),
        );
        m.insert("deletedDate".into(), d.deleted_date.into());
        m.insert("scheduledPurgeDate".into(), d.scheduled_purge.into());
    }
    v
}

// ---------------------------------------------------------------------------------
// Checks

pub fn disabled(op: &str) -> ApiError {
    ApiError::forbidden(format!("Operation {op} is not allowed on a disabled key."))
        .inner("KeyDisabled")
}

pub fn check_usable(v: &KeyVersion, op: &str, time_bound: bool) -> ApiResult<()> {
    if !v.attrs.enabled {
        return Err(disabled(op));
    }
    if !v.key_ops.iter().any(|o| o == op) {
        return Err(
            ApiError::forbidden(format!("Operation {op} is not permitted on this key."))
                .inner("KeyOperationForbidden"),
        );
    }
    if time_bound {
        let now = ids::now();
        if v.attrs.nbf.is_some_and(|n| now < n) {
            return Err(ApiError::forbidden(format!(
                "Operation {op} is not allowed on a key that is not yet valid (nbf is in the future)."
            )));
        }
        if v.attrs.exp.is_some_and(|e| now >= e) {
            return Err(ApiError::forbidden(format!(
                "Operation {op} is not allowed on an expired key."
            )));
        }
    }
    Ok(())
}

pub fn deleted_conflict(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."
    ))
    .inner("ObjectIsDeletedButRecoverable")
}

pub fn being_deleted() -> ApiError {
    ApiError::conflict("Key is currently being deleted.").inner("ObjectIsBeingDeleted")
}

/// Parses `attributes` of create/import/update into changes.
struct AttrChanges {
    enabled: Option<bool>,
    nbf: Option<Option<i64>>,
    exp: Option<Option<i64>>,
    exportable: Option<bool>,
}

fn attr_changes(body: &Map<String, Value>) -> ApiResult<AttrChanges> {
    let Some(a) = params::opt_object(body, "attributes")? else {
        return Ok(AttrChanges {
            enabled: None,
            nbf: None,
            exp: None,
            exportable: None,
        });
    };
    let time = |f: &str| -> ApiResult<Option<Option<i64>>> {
        match a.get(f) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(_) => Ok(Some(params::opt_i64(a, f)?)),
        }
    };
    let c = AttrChanges {
        enabled: params::opt_bool(a, "enabled")?,
        nbf: time("nbf")?,
        exp: time("exp")?,
        exportable: params::opt_bool(a, "exportable")?,
    };
    Ok(c)
}

fn new_attrs(ch: &AttrChanges) -> KeyAttrs {
    let now = ids::now();
    KeyAttrs {
        enabled: ch.enabled.unwrap_or(true),
        nbf: ch.nbf.flatten(),
        exp: ch.exp.flatten(),
        created: now,
        updated: now,
        exportable: ch.exportable.unwrap_or(false),
    }
}

fn check_window(a: &KeyAttrs) -> ApiResult<()> {
    if let (Some(n), Some(e)) = (a.nbf, a.exp) {
        if n > e {
            return Err(ApiError::bad_parameter(
                "The key's nbf must not be later than its exp.",
            ));
        }
    }
    Ok(())
}

/// Adds a version to a key (creating the key), refusing names that are soft-deleted or
/// that belong to a certificate unless `managed` says the caller is the certificate.
pub fn add_version(
    st: &mut ContainerState,
    name: &str,
    v: KeyVersion,
    managed: bool,
) -> ApiResult<KeyObject> {
    let key = lc(name);
    if st.deleted_keys.contains_key(&key) {
        return Err(deleted_conflict(name));
    }
    let obj = st.keys.entry(key).or_insert_with(|| KeyObject {
        name: name.to_string(),
        versions: Vec::new(),
        managed,
        rotation_policy: None,
    });
    if obj.managed && !managed {
        return Err(ApiError::conflict(format!(
            "Key {name} is managed by the certificate of the same name; change it through the certificate."
        )));
    }
    obj.managed |= managed;
    obj.versions.push(v);
    Ok(obj.clone())
}

// ---------------------------------------------------------------------------------
// Create / import

/// The kty a container reports for a requested kty, and the family to generate.
fn resolve_kty(kind: Kind, kty: &str) -> ApiResult<(bool, &'static str)> {
    // (is RSA, reported kty)
    let r = match (kind, kty) {
        (Kind::Vault, "RSA") => (true, "RSA"),
        (Kind::Vault | Kind::Hsm, "RSA-HSM") | (Kind::Hsm, "RSA") => (true, "RSA-HSM"),
        (Kind::Vault, "EC") => (false, "EC"),
        (Kind::Vault | Kind::Hsm, "EC-HSM") | (Kind::Hsm, "EC") => (false, "EC-HSM"),
        (_, "oct" | "oct-HSM") => {
            return Err(ApiError::bad_parameter(format!(
                "Key type '{kty}' is not supported by this emulator."
            )));
        }
        _ => {
            return Err(ApiError::bad_parameter(format!(
                "Invalid key type '{kty}'. Supported values are 'EC', 'EC-HSM', 'RSA', 'RSA-HSM', 'oct', 'oct-HSM'."
            )));
        }
    };
    Ok(r)
}

async fn create(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let kty = params::req_str(body, "kty")?;
    let (is_rsa, kty_out) = resolve_kty(ctx.c.kind, kty)?;
    ctx.c.hsm_allowed(kty_out.ends_with("-HSM"))?;
    let crv = params::opt_str(body, "crv")?;
    let size = params::opt_i64(body, "key_size")?;
    let exponent = params::opt_i64(body, "public_exponent")?;
    let spec = if is_rsa {
        let bits = size.unwrap_or(2048);
        let bits = u32::try_from(bits)
            .ok()
            .filter(|b| RSA_SIZES.contains(b))
            .ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "Invalid key size {bits}. Supported RSA key sizes are 2048, 3072 and 4096."
                ))
            })?;
        let e = exponent.unwrap_or(65537);
        let e = u32::try_from(e)
            .ok()
            .filter(|e| *e >= 3 && e % 2 == 1)
            .ok_or_else(|| ApiError::bad_parameter(format!("Invalid public exponent {e}.")))?;
        Spec::Rsa(bits, e)
    } else {
        let curve = match crv {
            Some(c) => Curve::parse(c).ok_or_else(|| {
                ApiError::bad_parameter(format!("Invalid curve name '{c}'. Supported values are 'P-256', 'P-256K', 'P-384', 'P-521'."))
            })?,
            None => match size {
                None | Some(256) => Curve::P256,
                Some(384) => Curve::P384,
                Some(521) => Curve::P521,
                Some(other) => return Err(ApiError::bad_parameter(format!("Invalid key size {other} for an EC key."))),
            },
        };
        Spec::Ec(curve)
    };
    let family = spec.family();
    let ops = params::key_ops(body, supported_ops(family))?.unwrap_or_else(|| default_ops(family));
    let ch = attr_changes(body)?;
    let attrs = new_attrs(&ch);
    check_window(&attrs)?;
    let release_policy = body.get("release_policy").filter(|v| !v.is_null()).cloned();
    if attrs.exportable && release_policy.is_none() {
        return Err(ApiError::bad_parameter(
            "An exportable key must have a release policy.",
        ));
    }
    let tags = params::tags(body)?.unwrap_or_default();
    {
        let st = ctx.c.lock();
        if st.deleted_keys.contains_key(&lc(name)) {
            return Err(deleted_conflict(name));
        }
    }
    let material = generate(spec).await?;
    let v = KeyVersion {
        version: ids::new_version(),
        material: Arc::new(material),
        kty: kty_out.to_string(),
        key_ops: ops,
        attrs,
        tags,
        release_policy,
    };
    let obj = add_version(&mut ctx.c.lock(), name, v.clone(), false)?;
    Ok(Reply::ok(bundle(ctx, &obj, &v)?))
}

#[derive(Clone, Copy)]
pub enum Spec {
    Rsa(u32, u32),
    Ec(Curve),
}

impl Spec {
    pub fn family(self) -> Family {
        match self {
            Spec::Rsa(bits, _) => Family::Rsa { bits },
            Spec::Ec(c) => Family::Ec(c),
        }
    }
}

/// Key generation off the async workers (RSA-4096 takes a while).
pub async fn generate(spec: Spec) -> ApiResult<KeyMaterial> {
    tokio::task::spawn_blocking(move || match spec {
        Spec::Rsa(bits, e) => KeyMaterial::generate_rsa(bits, e),
        Spec::Ec(c) => KeyMaterial::generate_ec(c),
    })
    .await
    .map_err(|e| {
        ApiError::new(
            500,
            "InternalServerError",
            format!("key generation failed: {e}"),
        )
    })?
}

fn import(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let jwk = params::opt_object(body, "key")?
        .ok_or_else(|| ApiError::bad_parameter("The parameter 'key' is required."))?;
    let jwk_kty = params::opt_str(jwk, "kty")?.unwrap_or_default();
    let hsm_flag = params::opt_bool(body, "Hsm")?.unwrap_or(false);
    let material = KeyMaterial::from_jwk(jwk)?;
    let is_rsa = matches!(material.family, Family::Rsa { .. });
    let hsm = ctx.c.kind == Kind::Hsm || hsm_flag || jwk_kty.ends_with("-HSM");
    ctx.c.hsm_allowed(hsm)?;
    let kty_out = match (is_rsa, hsm) {
        (true, false) => "RSA",
        (true, true) => "RSA-HSM",
        (false, false) => "EC",
        (false, true) => "EC-HSM",
    };
    let ops = params::key_ops(jwk, supported_ops(material.family))?
        .unwrap_or_else(|| default_ops(material.family));
    let ch = attr_changes(body)?;
    let attrs = new_attrs(&ch);
    check_window(&attrs)?;
    let release_policy = body.get("release_policy").filter(|v| !v.is_null()).cloned();
    if attrs.exportable && release_policy.is_none() {
        return Err(ApiError::bad_parameter(
            "An exportable key must have a release policy.",
        ));
    }
    let v = KeyVersion {
        version: ids::new_version(),
        material: Arc::new(material),
        kty: kty_out.to_string(),
        key_ops: ops,
        attrs,
        tags: params::tags(body)?.unwrap_or_default(),
        release_policy,
    };
    let obj = add_version(&mut ctx.c.lock(), name, v.clone(), false)?;
    Ok(Reply::ok(bundle(ctx, &obj, &v)?))
}

// ---------------------------------------------------------------------------------
// Read, list, update

pub fn not_found(name: &str, version: Option<&str>) -> ApiError {
    match version {
        Some(v) => ApiError::key_not_found(&format!("{name}/{v}")),
        None => ApiError::key_not_found(name),
    }
}

fn get(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let st = ctx.c.lock();
    let obj = st
        .keys
        .get(&lc(name))
        .ok_or_else(|| not_found(name, None))?;
    let v = match ctx.version() {
        None => obj.current(),
        Some(ver) => obj.find(ver),
    }
    .ok_or_else(|| not_found(name, ctx.version()))?;
    if !v.attrs.enabled {
        return Err(disabled("get"));
    }
    Ok(Reply::ok(bundle(ctx, obj, v)?))
}

fn list(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let items: Vec<(String, Value)> = {
        let st = ctx.c.lock();
        st.keys
            .iter()
            .filter_map(|(k, obj)| obj.current().map(|v| (k.clone(), item(ctx, obj, v, false))))
            .collect()
    };
    page(ctx, items, "/keys")
}

fn list_versions(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let items: Vec<(String, Value)> = {
        let st = ctx.c.lock();
        let obj = st
            .keys
            .get(&lc(name))
            .ok_or_else(|| not_found(name, None))?;
        obj.versions
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{i:08}"), item(ctx, obj, v, true)))
            .collect()
    };
    page(ctx, items, &format!("/keys/{name}/versions"))
}

fn update(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let ch = attr_changes(body)?;
    let tags = params::tags(body)?;
    let release_policy = body.get("release_policy").filter(|v| !v.is_null()).cloned();
    let mut st = ctx.c.lock();
    let obj = st
        .keys
        .get_mut(&lc(name))
        .ok_or_else(|| not_found(name, None))?;
    let version = ctx.version();
    let v = obj
        .find_mut(version)
        .ok_or_else(|| not_found(name, version))?;
    if let Some(ops) = params::key_ops(body, supported_ops(v.material.family))? {
        v.key_ops = ops;
    }
    let mut attrs = v.attrs.clone();
    if let Some(e) = ch.enabled {
        attrs.enabled = e;
    }
    if let Some(n) = ch.nbf {
        attrs.nbf = n;
    }
    if let Some(e) = ch.exp {
        attrs.exp = e;
    }
    if let Some(x) = ch.exportable {
        attrs.exportable = x;
    }
    check_window(&attrs)?;
    attrs.updated = ids::now();
    v.attrs = attrs;
    if let Some(t) = tags {
        v.tags = t;
    }
    if release_policy.is_some() {
        v.release_policy = release_policy;
    }
    let v = v.clone();
    let obj = obj.clone();
    Ok(Reply::ok(bundle(ctx, &obj, &v)?))
}

// ---------------------------------------------------------------------------------
// Rotation

async fn rotate(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let template = {
        let st = ctx.c.lock();
        let obj = st
            .keys
            .get(&lc(name))
            .ok_or_else(|| not_found(name, None))?;
        if obj.managed {
            return Err(ApiError::forbidden(format!(
                "Key {name} is managed by a certificate and cannot be rotated."
            )));
        }
        obj.current()
            .cloned()
            .ok_or_else(|| not_found(name, None))?
    };
    let spec = match template.material.family {
        Family::Rsa { bits } => Spec::Rsa(bits, 65537),
        Family::Ec(c) => Spec::Ec(c),
    };
    let material = generate(spec).await?;
    let now = ids::now();
    let v = KeyVersion {
        version: ids::new_version(),
        material: Arc::new(material),
        attrs: KeyAttrs {
            enabled: true,
            nbf: None,
            exp: None,
            created: now,
            updated: now,
            exportable: template.attrs.exportable,
        },
        ..template
    };
    let obj = add_version(&mut ctx.c.lock(), name, v.clone(), false)?;
    Ok(Reply::ok(bundle(ctx, &obj, &v)?))
}

fn rotation_policy(ctx: &Ctx<'_>, set: bool) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let id = format!("{}/keys/{name}/rotationpolicy", ctx.c.base_url);
    let mut st = ctx.c.lock();
    let obj = st
        .keys
        .get_mut(&lc(name))
        .ok_or_else(|| not_found(name, None))?;
    if set {
        let body = params::object(ctx.body, "request body")?;
        let actions = match body.get("lifetimeActions") {
            None | Some(Value::Null) => Value::Array(Vec::new()),
            Some(a @ Value::Array(_)) => a.clone(),
            Some(_) => {
                return Err(ApiError::bad_parameter(
                    "The parameter 'lifetimeActions' must be an array.",
                ));
            }
        };
        let now = ids::now();
        let created = obj
            .rotation_policy
            .as_ref()
            .and_then(|p| p.pointer("/attributes/created"))
            .and_then(Value::as_i64)
            .unwrap_or(now);
        let mut attrs = json!({"created": created, "updated": now});
        if let Some(e) = params::opt_object(body, "attributes")?
            .and_then(|a| a.get("expiryTime"))
            .filter(|v| !v.is_null())
        {
            attrs["expiryTime"] = e.clone();
        }
        obj.rotation_policy =
            Some(json!({"id": id, "lifetimeActions": actions, "attributes": attrs}));
    }
    let policy = obj.rotation_policy.clone().unwrap_or_else(|| {
        json!({
            "id": id,
            "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
            "attributes": null,
        })
    });
    Ok(Reply::ok(policy))
}

/// Seeds a key from a file: a fixed version derived from the container, name and key so
/// that restarts give the same identifiers.
pub fn seed_key(
    c: &Container,
    name: &str,
    material: KeyMaterial,
    managed: bool,
    version: &str,
) -> ApiResult<()> {
    let is_rsa = matches!(material.family, Family::Rsa { .. });
    let kty = match (is_rsa, c.kind) {
        (true, Kind::Vault) => "RSA",
        (true, Kind::Hsm) => "RSA-HSM",
        (false, Kind::Vault) => "EC",
        (false, Kind::Hsm) => "EC-HSM",
    };
    let family = material.family;
    let now = ids::now();
    let v = KeyVersion {
        version: version.to_string(),
        material: Arc::new(material),
        kty: kty.to_string(),
        key_ops: default_ops(family),
        attrs: KeyAttrs {
            enabled: true,
            nbf: None,
            exp: None,
            created: now,
            updated: now,
            exportable: false,
        },
        tags: Map::new(),
        release_policy: None,
    };
    add_version(&mut c.lock(), name, v, managed)?;
    Ok(())
}
