//! Soft delete of keys: delete (a DeletedKeyBundle), the deleted-key views, recover and
//! purge, with the window in which the deletion is still in progress (409
//! ObjectIsBeingDeleted).

use std::time::Instant;

use serde_json::Value;

use crate::ids;
use crate::keys::{add_deleted_fields, being_deleted, bundle, item, lc, not_found};
use crate::paging::page;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::Deleted;

pub fn delete(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let mut st = ctx.c.lock();
    let key = lc(name);
    match st.keys.get(&key) {
        None => return Err(not_found(name, None)),
        Some(obj) if obj.managed => {
            return Err(ApiError::forbidden(format!(
                "Key {name} is managed by a certificate and cannot be deleted directly; delete the certificate."
            )));
        }
        Some(_) => {}
    }
    let obj = st.keys.remove(&key).ok_or_else(|| not_found(name, None))?;
    let now = ids::now();
    let d = Deleted {
        object: obj,
        deleted_date: now,
        scheduled_purge: now + i64::from(ctx.app.settings.recoverable_days) * 86_400,
        ready_at: Instant::now() + ctx.app.settings.delete_window,
    };
    let current = d.object.current().ok_or_else(|| not_found(name, None))?;
    let body = add_deleted_fields(ctx, bundle(ctx, &d.object, current)?, &d.object.name, &d);
    st.deleted_keys.insert(key, d);
    Ok(Reply::ok(body))
}

pub fn get_deleted(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let st = ctx.c.lock();
    let d = st
        .deleted_keys
        .get(&lc(name))
        .filter(|d| d.ready())
        .ok_or_else(|| ApiError::deleted_key_not_found(name))?;
    let current = d
        .object
        .current()
        .ok_or_else(|| ApiError::deleted_key_not_found(name))?;
    Ok(Reply::ok(add_deleted_fields(
        ctx,
        bundle(ctx, &d.object, current)?,
        &d.object.name,
        d,
    )))
}

pub fn list_deleted(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let items: Vec<(String, Value)> = {
        let st = ctx.c.lock();
        st.deleted_keys
            .iter()
            .filter(|(_, d)| d.ready())
            .filter_map(|(k, d)| {
                let v = d.object.current()?;
                let it = item(ctx, &d.object, v, false);
                Some((k.clone(), add_deleted_fields(ctx, it, &d.object.name, d)))
            })
            .collect()
    };
    page(ctx, items, "/deletedkeys")
}

pub fn recover(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let key = lc(name);
    let mut st = ctx.c.lock();
    let d = st
        .deleted_keys
        .get(&key)
        .ok_or_else(|| ApiError::deleted_key_not_found(name))?;
    if !d.ready() {
        return Err(being_deleted());
    }
    let d = st
        .deleted_keys
        .remove(&key)
        .ok_or_else(|| ApiError::deleted_key_not_found(name))?;
    let obj = d.object;
    let current = obj.current().ok_or_else(|| not_found(name, None))?;
    let body = bundle(ctx, &obj, current)?;
    st.keys.insert(key, obj);
    Ok(Reply::ok(body))
}

pub fn purge(ctx: &Ctx<'_>) -> ApiResult<Reply> {
    let name = ctx.name()?;
    let key = lc(name);
    let mut st = ctx.c.lock();
    let d = st
        .deleted_keys
        .get(&key)
        .ok_or_else(|| ApiError::deleted_key_not_found(name))?;
    if !d.ready() {
        return Err(being_deleted());
    }
    st.deleted_keys.remove(&key);
    Ok(Reply::with_status(204, None))
}
