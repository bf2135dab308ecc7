//! Certificate handlers (vaults only): create with a self-signed policy (202 and a
//! pending operation polled to completion), import PFX or PEM, get, list, versions,
//! policy, update, soft delete / recover / purge, and the linked secret. Each
//! certificate version has a key version and a secret version of the same name and
//! version; the key is `managed`.

use std::sync::Arc;
use std::time::Instant;

use openssl::hash::{MessageDigest, hash};
use serde_json::{Map, Value, json};

use crate::b64;
use crate::cert_policy::{key_spec, normalize_policy};
use crate::crypto::{Family, KeyMaterial};
use crate::ids;
use crate::keys;
use crate::paging;
use crate::params;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::routing::Operation;
use crate::state::{
    CertAttrs, CertObject, CertVersion, ContainerState, Deleted, DeletedCert, KeyAttrs, KeyVersion,
    PendingIssue, PendingOp,
};
use crate::x509::{self, Profile};
use crate::{cert_backup, cert_import, cert_secret};

pub const PKCS12: &str = "application/x-pkcs12";
pub const PEM: &str = "application/x-pem-file";

pub async fn handle(ctx: &Ctx<'_>, op: Operation) -> ApiResult<Reply> {
    use Operation as O;
    match op {
        O::CreateCertificate => create(ctx).await,
        O::GetCertificateOperation => get_operation(ctx),
        O::ImportCertificate => cert_import::import(ctx),
        O::GetCertificate => get(ctx),
        O::ListCertificates => list(ctx),
        O::ListCertificateVersions => list_versions(ctx),
        O::UpdateCertificate => update(ctx),
        O::DeleteCertificate => delete(ctx),
        O::GetCertificatePolicy => policy(ctx, false),
        O::UpdateCertificatePolicy => policy(ctx, true),
        O::GetDeletedCertificate => get_deleted(ctx),
        O::ListDeletedCertificates => list_deleted(ctx),
        O::RecoverCertificate => recover(ctx),
        O::PurgeCertificate => purge(ctx),
        O::BackupCertificate => cert_backup::backup(ctx),
        O::RestoreCertificate => cert_backup::restore(ctx),
        O::GetSecret => cert_secret::secret(ctx),
        _ => Err(ApiError::bad_parameter(
            "This operation is not supported by the emulator.",
        )),
    }
}

pub fn lc(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn cert_attrs_json(ctx: &Ctx<'_>, a: &CertAttrs) -> Value {
    json!({
        "enabled": a.enabled,
        "nbf": a.nbf,
        "exp": a.exp,
        "created": a.created,
        "updated": a.updated,
        "recoveryLevel": ctx.app.recovery_level(),
        "recoverableDays": ctx.app.settings.recoverable_days,
    })
}

fn policy_with_id(ctx: &Ctx<'_>, name: &str, policy: &Value) -> Value {
    let mut p = policy.clone();
    if let Some(m) = p.as_object_mut() {
        m.insert(
            "id".into(),
            format!("{}/certificates/{name}/policy", ctx.c.base_url).into(),
        );
    }
    p
}

pub fn x5t(der: &[u8]) -> String {
    hash(MessageDigest::sha1(), der)
        .map(|d| b64::url(&d))
        .unwrap_or_default()
}

pub fn bundle(ctx: &Ctx<'_>, obj: &CertObject, v: &CertVersion) -> Value {
    let base = &ctx.c.base_url;
    let (n, ver) = (&obj.name, &v.version);
    let mut b = Map::new();
    b.insert("id".into(), format!("{base}/certificates/{n}/{ver}").into());
    b.insert("kid".into(), format!("{base}/keys/{n}/{ver}").into());
    b.insert("sid".into(), format!("{base}/secrets/{n}/{ver}").into());
    b.insert("x5t".into(), x5t(&v.der).into());
    b.insert("cer".into(), b64::std(&v.der).into());
    b.insert("attributes".into(), cert_attrs_json(ctx, &v.attrs));
    if !v.tags.is_empty() {
        b.insert("tags".into(), Value::Object(v.tags.clone()));
    }
    b.insert("policy".into(), policy_with_id(ctx, n, &v.policy));
    if obj.pending.is_some() {
        b.insert(
            "pending".into(),
            json!({"id": format!("{base}/certificates/{n}/pending")}),
        );
    }
    Value::Object(b)
}

fn item(ctx: &Ctx<'_>, obj: &CertObject, v: &CertVersion, with_version: bool) -> Value {
    let id = if with_version {
        format!("{}/certificates/{}/{}", ctx.c.base_url, obj.name, v.version)
    } else {
        format!("{}/certificates/{}", ctx.c.base_url, obj.name)
    };
    let mut m = Map::new();
    m.insert("id".into(), id.into());
    m.insert("x5t".into(), x5t(&v.der).into());
    m.insert("attributes".into(), cert_attrs_json(ctx, &v.attrs));
    if !v.tags.is_empty() {
        m.insert("tags".into(), Value::Object(v.tags.clone()));
    }
    Value::Object(m)
}

fn deleted_fields(ctx: &Ctx<'_>, mut v: Value, name: &str, d: &Deleted<DeletedCert>) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "recoveryId".into(),
            format!("{}/deletedcertificates/{name}", ctx.c.base_url).into(),
        );
        m.insert("deletedDate".into(), d.deleted_date.into());
        m.insert("scheduledPurgeDate".into(), d.scheduled_purge.into());
    }
    v
}

fn operation_json(ctx: &Ctx<'_>, name: &str, op: &PendingOp) -> Value {
    let base = &ctx.c.base_url;
    let mut m = Map::new();
    m.insert(
        "id".into(),
        format!("{base}/certificates/{name}/pending").into(),
    );
    m.insert("issuer".into(), op.issuer.clone());
    m.insert("csr".into(), b64::std(&op.csr_der).into());
    m.insert("cancellation_requested".into(), false.into());
    if op.completed {
        m.insert("status".into(), "completed".into());
        m.insert(
            "target".into(),
            format!("{base}/certificates/{name}").into(),
        );
    } else {
        m.insert("status".into(), "inProgress".into());
        m.insert(
            "status_details".into(),
            "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.".into(),
        );
    }
    m.insert("request_id".into(), op.request_id.clone().into());
    Value::Object(m)
}

// ---------------------------------------------------------------------------------
// Storing versions

pub fn check_name_free(st: &ContainerState, name: &str) -> ApiResult<()> {
    if st.deleted_certs.contains_key(&lc(name)) {
        return Err(ApiError::conflict(format!(
            "Certificate {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged."
        ))
        .inner("ObjectIsDeletedButRecoverable"));
    }
    if let Some(k) = st.keys.get(&lc(name)) {
        if !k.managed {
            return Err(ApiError::conflict(format!(
                "A key named {name} that is not managed by a certificate already exists."
            )));
        }
    }
    if st.deleted_keys.contains_key(&lc(name)) {
        return Err(ApiError::conflict(format!(
            "A deleted key named {name} exists; purge or recover it first."
        ))
        .inner("ObjectIsDeletedButRecoverable"));
    }
    Ok(())
}

/// Stores a new certificate version and its managed key version.
pub fn store_version(
    st: &mut ContainerState,
    name: &str,
    version: String,
    material: Arc<KeyMaterial>,
    kty: String,
    key_ops: Vec<String>,
    cert: CertVersion,
) -> ApiResult<()> {
    let key_version = KeyVersion {
        version,
        material,
        kty,
        key_ops,
        attrs: KeyAttrs {
            enabled: cert.attrs.enabled,
            nbf: Some(cert.attrs.nbf),
            exp: Some(cert.attrs.exp),
            created: cert.attrs.created,
            updated: cert.attrs.updated,
            exportable: false,
        },
        tags: cert.tags.clone(),
        release_policy: None,
    };
    keys::add_version(st, name, key_version, true)?;
    let obj = st.certs.entry(lc(name)).or_insert_with(|| CertObject {
        name: name.to_string(),
        versions: Vec::new(),
        pending: None,
    });
    obj.versions.push(cert);
    Ok(())
}

/// Issues the certificate of a pending self-signed operation whose polls are used up.
fn complete_pending(st: &mut ContainerState, name: &str) -> ApiResult<()> {
    let key = lc(name);
    let Some(issue) = st
        .certs
        .get(&key)
        .and_then(|c| c.pending.as_ref())
        .filter(|p| !p.completed && p.polls_left == 0)
        .and_then(|p| p.waiting.clone())
    else {
        return Ok(());
    };
    let x509_props = issue
        .policy
        .get("x509_props")
        .cloned()
        .unwrap_or(Value::Null);
    let profile = Profile::from_policy(&x509_props)?;
    let (der, nbf, exp) = x509::self_signed(&issue.material, &profile)?;
    let now = ids::now();
    let cert = CertVersion {
        version: issue.version.clone(),
        der,
        chain: Vec::new(),
        attrs: CertAttrs {
            enabled: issue.attrs_enabled,
            nbf,
            exp,
            created: now,
            updated: now,
        },
        tags: issue.tags.clone(),
        content_type: issue
            .policy
            .pointer("/secret_props/contentType")
            .and_then(Value::as_str)
            .unwrap_or(PKCS12)
            .to_string(),
        policy: issue.policy.clone(),
    };
    let display = st
        .certs
        .get(&key)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| name.to_string());
    store_version(
        st,
        &display,
        issue.version.clone(),
        issue.material.clone(),
        issue.kty.clone(),
        issue.key_ops.clone(),
        cert,
    )?;
    if let Some(p) = st.certs.get_mut(&key).and_then(|c| c.pending.as_mut()) {
        p.completed = true;
        p.waiting = None;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Create and the pending operation

async fn create(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let given = params::opt_object(body, "policy")?
        .ok_or_else(|| ApiError::bad_parameter("The parameter 'policy' is required."))?;
    let issuer = params::opt_object(given, "issuer")?
        .and_then(|i| i.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("Self");
    if !issuer.eq_ignore_ascii_case("Self") {
        return Err(ApiError::bad_parameter(format!(
            "Issuer '{issuer}' is not supported by this emulator; use a 'Self' issuer or import the certificate."
        )));
    }
    let (spec, hsm) = key_spec(params::opt_object(given, "key_props")?)?;
    ctx.c.hsm_allowed(hsm)?;
    let tags = params::tags(body)?.unwrap_or_default();
    let enabled = params::opt_object(body, "attributes")?
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    {
        let st = ctx.c.lock();
        check_name_free(&st, name)?;
    }
    let material = keys::generate(spec).await?;
    let mut policy = normalize_policy(given, Some(&material), None)?;
    if let Some(a) = policy.get_mut("attributes") {
        a["enabled"] = enabled.into();
    }
    let x509_props = policy.get("x509_props").cloned().unwrap_or(Value::Null);
    let profile = Profile::from_policy(&x509_props)?;
    let usages: Vec<String> = x509_props
        .get("key_usage")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let key_ops = x509::key_ops_for_usage(&usages, spec.family())?;
    let csr_der = x509::csr(&material, &profile)?;
    let kty = match (spec.family(), hsm) {
        (Family::Rsa { .. }, false) => "RSA",
        (Family::Rsa { .. }, true) => "RSA-HSM",
        (Family::Ec(_), false) => "EC",
        (Family::Ec(_), true) => "EC-HSM",
    };
    let op = PendingOp {
        request_id: ids::hex(&ids::random_bytes(16)),
        csr_der,
        issuer: policy
            .get("issuer")
            .cloned()
            .unwrap_or_else(|| json!({"name": "Self"})),
        polls_left: ctx.app.settings.cert_pending_polls,
        waiting: Some(PendingIssue {
            version: ids::new_version(),
            material: Arc::new(material),
            kty: kty.to_string(),
            key_ops,
            policy,
            attrs_enabled: enabled,
            tags,
        }),
        completed: false,
    };
    let body = {
        let mut st = ctx.c.lock();
        check_name_free(&st, name)?;
        let obj = st.certs.entry(lc(name)).or_insert_with(|| CertObject {
            name: name.to_string(),
            versions: Vec::new(),
            pending: None,
        });
        if obj.pending.as_ref().is_some_and(|p| !p.completed) {
            return Err(ApiError::conflict(format!(
                "There is already a pending operation for certificate {name}."
            )));
        }
        let display = obj.name.clone();
        obj.pending = Some(op.clone());
        operation_json(ctx, &display, &op)
    };
    Ok(Reply::with_status(202, Some(body))
        .header(
            "Location",
            format!(
                "{}/certificates/{name}/pending?api-version={}",
                ctx.c.base_url, ctx.api
            ),
        )
        .header(
            "Retry-After",
            ctx.app.settings.cert_retry_after_s.to_string(),
        ))
}

fn get_operation(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let mut st = ctx.c.lock();
    let key = lc(name);
    let not_found = || {
        ApiError::new(
            404,
            "PendingCertificateNotFound",
            format!("Pending certificate not found: {name}"),
        )
    };
    {
        let p = st
            .certs
            .get_mut(&key)
            .and_then(|c| c.pending.as_mut())
            .ok_or_else(not_found)?;
        if !p.completed && p.polls_left > 0 {
            p.polls_left -= 1;
            let op = p.clone();
            return Ok(Reply::ok(operation_json(ctx, name, &op)));
        }
    }
    complete_pending(&mut st, name)?;
    let obj = st.certs.get(&key).ok_or_else(not_found)?;
    let op = obj.pending.clone().ok_or_else(not_found)?;
    Ok(Reply::ok(operation_json(ctx, &obj.name, &op)))
}

// ---------------------------------------------------------------------------------
// Read, list, update

pub fn find<'a>(
    st: &'a ContainerState,
    name: &str,
    version: Option<&str>,
) -> ApiResult<(&'a CertObject, &'a CertVersion)> {
    let not_found = || match version {
        Some(v) => ApiError::certificate_not_found(&format!("{name}/{v}")),
        None => ApiError::certificate_not_found(name),
    };
    let obj = st.certs.get(&lc(name)).ok_or_else(not_found)?;
    let v = match version {
        None => obj.current(),
        Some(ver) => obj.find(ver),
    }
    .ok_or_else(not_found)?;
    Ok((obj, v))
}

fn get(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let mut st = ctx.c.lock();
    complete_pending(&mut st, name)?;
    let (obj, v) = find(&st, name, ctx.version())?;
    Ok(Reply::ok(bundle(ctx, obj, v)))
}

fn list(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let items: Vec<(String, Value)> = {
        let mut st = ctx.c.lock();
        let names: Vec<String> = st.certs.keys().cloned().collect();
        for n in &names {
            complete_pending(&mut st, n)?;
        }
        st.certs
            .iter()
            .filter_map(|(k, obj)| obj.current().map(|v| (k.clone(), item(ctx, obj, v, false))))
            .collect()
    };
    paging::page(ctx, items, "/certificates")
}

fn list_versions(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let items: Vec<(String, Value)> = {
        let st = ctx.c.lock();
        let obj = st
            .certs
            .get(&lc(name))
            .ok_or_else(|| ApiError::certificate_not_found(name))?;
        obj.versions
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{i:08}"), item(ctx, obj, v, true)))
            .collect()
    };
    paging::page(ctx, items, &format!("/certificates/{name}/versions"))
}

fn update(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let body = params::object(ctx.body, "request body")?;
    let enabled = params::opt_object(body, "attributes")?
        .map(|a| params::opt_bool(a, "enabled"))
        .transpose()?
        .flatten();
    let tags = params::tags(body)?;
    let mut st = ctx.c.lock();
    let version = ctx.version().map(str::to_string);
    let (obj_name, ver) = {
        let (obj, v) = find(&st, name, version.as_deref())?;
        (obj.name.clone(), v.version.clone())
    };
    let now = ids::now();
    if let Some(v) = st
        .certs
        .get_mut(&lc(name))
        .and_then(|o| o.versions.iter_mut().find(|v| v.version == ver))
    {
        if let Some(e) = enabled {
            v.attrs.enabled = e;
        }
        if let Some(t) = &tags {
            v.tags = t.clone();
        }
        v.attrs.updated = now;
    }
    // The managed key version follows the certificate's enabled state.
    if let Some(kv) = st
        .keys
        .get_mut(&lc(name))
        .and_then(|k| k.find_mut(Some(&ver)))
    {
        if let Some(e) = enabled {
            kv.attrs.enabled = e;
            kv.attrs.updated = now;
        }
    }
    let (obj, v) = find(&st, &obj_name, Some(&ver))?;
    Ok(Reply::ok(bundle(ctx, obj, v)))
}

fn policy(ctx: &Ctx<'_>, set: bool) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let mut st = ctx.c.lock();
    let obj = st
        .certs
        .get_mut(&lc(name))
        .ok_or_else(|| ApiError::certificate_not_found(name))?;
    let display = obj.name.clone();
    let v = obj
        .versions
        .last_mut()
        .ok_or_else(|| ApiError::certificate_not_found(name))?;
    if set {
        let body = params::object(ctx.body, "request body")?;
        if let Some(p) = v.policy.as_object_mut() {
            for section in [
                "key_props",
                "secret_props",
                "x509_props",
                "lifetime_actions",
                "issuer",
                "attributes",
            ] {
                if let Some(val) = body.get(section).filter(|v| !v.is_null()) {
                    p.insert(section.to_string(), val.clone());
                }
            }
        }
    }
    let p = v.policy.clone();
    Ok(Reply::ok(policy_with_id(ctx, &display, &p)))
}

// ---------------------------------------------------------------------------------
// Delete, recover, purge

fn delete(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let key = lc(name);
    let mut st = ctx.c.lock();
    let cert = st
        .certs
        .remove(&key)
        .ok_or_else(|| ApiError::certificate_not_found(name))?;
    let Some(current) = cert.current().cloned() else {
        st.certs.insert(key, cert);
        return Err(ApiError::certificate_not_found(name));
    };
    let managed_key = st.keys.remove(&key);
    let now = ids::now();
    let d = Deleted {
        object: DeletedCert {
            cert,
            key: managed_key,
        },
        deleted_date: now,
        scheduled_purge: now + i64::from(ctx.app.settings.recoverable_days) * 86_400,
        ready_at: Instant::now() + ctx.app.settings.delete_window,
    };
    let body = deleted_fields(
        ctx,
        bundle(ctx, &d.object.cert, &current),
        &d.object.cert.name,
        &d,
    );
    st.deleted_certs.insert(key, d);
    Ok(Reply::ok(body))
}

fn deleted_not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "CertificateNotFound",
        format!("Deleted Certificate not found: {name}"),
    )
}

fn get_deleted(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let st = ctx.c.lock();
    let d = st
        .deleted_certs
        .get(&lc(name))
        .filter(|d| d.ready())
        .ok_or_else(|| deleted_not_found(name))?;
    let v = d
        .object
        .cert
        .current()
        .ok_or_else(|| deleted_not_found(name))?;
    Ok(Reply::ok(deleted_fields(
        ctx,
        bundle(ctx, &d.object.cert, v),
        &d.object.cert.name,
        d,
    )))
}

fn list_deleted(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let items: Vec<(String, Value)> = {
        let st = ctx.c.lock();
        st.deleted_certs
            .iter()
            .filter(|(_, d)| d.ready())
            .filter_map(|(k, d)| {
                let v = d.object.cert.current()?;
                Some((
                    k.clone(),
                    deleted_fields(
                        ctx,
                        item(ctx, &d.object.cert, v, false),
                        &d.object.cert.name,
                        d,
                    ),
                ))
            })
            .collect()
    };
    paging::page(ctx, items, "/deletedcertificates")
}

fn recover(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let key = lc(name);
    let mut st = ctx.c.lock();
    let ready = st
        .deleted_certs
        .get(&key)
        .ok_or_else(|| deleted_not_found(name))?
        .ready();
    if !ready {
        return Err(
            ApiError::conflict("Certificate is currently being deleted.")
                .inner("ObjectIsBeingDeleted"),
        );
    }
    let d = st
        .deleted_certs
        .remove(&key)
        .ok_or_else(|| deleted_not_found(name))?;
    if let Some(k) = d.object.key {
        st.keys.insert(key.clone(), k);
    }
    let cert = d.object.cert;
    let body = cert
        .current()
        .map(|v| bundle(ctx, &cert, v))
        .ok_or_else(|| deleted_not_found(name))?;
    st.certs.insert(key, cert);
    Ok(Reply::ok(body))
}

fn purge(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let key = lc(name);
    let mut st = ctx.c.lock();
    let ready = st
        .deleted_certs
        .get(&key)
        .ok_or_else(|| deleted_not_found(name))?
        .ready();
    if !ready {
        return Err(
            ApiError::conflict("Certificate is currently being deleted.")
                .inner("ObjectIsBeingDeleted"),
        );
    }
    st.deleted_certs.remove(&key);
    Ok(Reply::with_status(204, None))
}
