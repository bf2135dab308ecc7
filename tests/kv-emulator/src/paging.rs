//! Paged listings as the service pages them: `maxresults` 1–25 (default 25), an opaque
//! `$skiptoken`, and an absolute `nextLink` carrying the request's api-version.

use serde_json::{Map, Value};

use crate::b64;
use crate::pipeline::Ctx;
use crate::reply::{ApiError, ApiResult, Reply};

const MAX_PAGE: usize = 25;

/// One page of a listing sorted by `sort_key`, with an absolute `nextLink`.
pub fn page(ctx: &Ctx<'_>, mut items: Vec<(String, Value)>, path: &str) -> ApiResult<Reply> {
    let max = match ctx.query("maxresults") {
        None => MAX_PAGE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_parameter(format!(
                    "Invalid maxresults '{s}': it must be an integer from 1 to 25."
                )));
            }
        },
    };
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match ctx.query("$skiptoken") {
        None => 0,
        Some(tok) => {
            let after = b64::decode(tok)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix("after:").map(str::to_string))
                .ok_or_else(|| ApiError::bad_parameter("The $skiptoken is not valid."))?;
            items
                .iter()
                .position(|(k, _)| *k > after)
                .unwrap_or(items.len())
        }
    };
    let end = (start + max).min(items.len());
    let mut body = Map::new();
    let value: Vec<Value> = items[start..end].iter().map(|(_, v)| v.clone()).collect();
    body.insert("value".into(), Value::Array(value));
    if end < items.len() {
        let token = b64::url(format!("after:{}", items[end - 1].0).as_bytes());
        let mut link = format!(
            "{}{path}?api-version={}&$skiptoken={token}",
            ctx.c.base_url, ctx.api
        );
        if ctx.query("maxresults").is_some() {
            link.push_str(&format!("&maxresults={max}"));
        }
        body.insert("nextLink".into(), link.into());
    } else {
        body.insert("nextLink".into(), Value::Null);
    }
    Ok(Reply::ok(Value::Object(body)))
}
