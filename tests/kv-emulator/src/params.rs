//! Reading request bodies the way the service validates them: wrong JSON types and
//! out-of-range values are 400 BadParameter, never a panic.

use serde_json::{Map, Value};

use crate::b64;
use crate::reply::{ApiError, ApiResult};

pub fn object<'a>(body: &'a Value, what: &str) -> ApiResult<&'a Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| ApiError::bad_parameter(format!("The {what} must be a JSON object.")))
}

pub fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_parameter(format!(
            "The parameter '{field}' must be a string."
        ))),
    }
}

pub fn req_str<'a>(obj: &'a Map<String, Value>, field: &str) -> ApiResult<&'a str> {
    opt_str(obj, field)?
        .ok_or_else(|| ApiError::bad_parameter(format!("The parameter '{field}' is required.")))
}

pub fn opt_bool(obj: &Map<String, Value>, field: &str) -> ApiResult<Option<bool>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_parameter(format!(
            "The parameter '{field}' must be a boolean."
        ))),
    }
}

pub fn opt_i64(obj: &Map<String, Value>, field: &str) -> ApiResult<Option<i64>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            ApiError::bad_parameter(format!("The parameter '{field}' must be an integer."))
        }),
    }
}

pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> ApiResult<Option<&'a Map<String, Value>>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ApiError::bad_parameter(format!(
            "The parameter '{field}' must be a JSON object."
        ))),
    }
}

/// A base64url (leniently decoded) binary field.
pub fn req_bytes(obj: &Map<String, Value>, field: &str) -> ApiResult<Vec<u8>> {
    let text = req_str(obj, field)?;
    b64::decode(text).ok_or_else(|| {
        ApiError::bad_parameter(format!("The parameter '{field}' is not valid base64url."))
    })
}

/// Tags: at most 15, string values, names and values up to 256 characters.
pub fn tags(obj: &Map<String, Value>) -> ApiResult<Option<Map<String, Value>>> {
    let Some(tags) = opt_object(obj, "tags")? else {
        return Ok(None);
    };
    if tags.len() > 15 {
        return Err(ApiError::bad_parameter(
            "Too many tags: at most 15 are allowed.",
        ));
    }
    for (k, v) in tags {
        let Some(s) = v.as_str() else {
            return Err(ApiError::bad_parameter(format!(
                "The value of tag '{k}' must be a string."
            )));
        };
        if k.chars().count() > 256 || s.chars().count() > 256 {
            return Err(ApiError::bad_parameter(
                "Tag names and values are limited to 256 characters.",
            ));
        }
    }
    Ok(Some(tags.clone()))
}

/// `key_ops`, checked against what the key type supports.
pub fn key_ops(obj: &Map<String, Value>, supported: &[&str]) -> ApiResult<Option<Vec<String>>> {
    let list = match obj.get("key_ops") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "The parameter 'key_ops' must be an array of strings.",
            ));
        }
    };
    let mut ops = Vec::new();
    let mut bad = Vec::new();
    for v in list {
        let Some(s) = v.as_str() else {
            return Err(ApiError::bad_parameter(
                "The parameter 'key_ops' must be an array of strings.",
            ));
        };
        if supported.contains(&s) {
            if !ops.iter().any(|o| o == s) {
                ops.push(s.to_string());
            }
        } else {
            bad.push(format!("\"{s}\""));
        }
    }
    if !bad.is_empty() {
        let sup: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        return Err(ApiError::bad_parameter(format!(
            "Unsupported key operation(s): {}. Supported values are {}.",
            bad.join(", "),
            sup.join(", ")
        )));
    }
    Ok(Some(ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_are_bad_parameter() {
        let v = json!({"a": 1, "b": "x", "tags": {"t": 1}, "key_ops": ["sign", "wrapKey"]});
        let o = v.as_object().unwrap();
        assert_eq!(opt_str(o, "a").unwrap_err().status, 400);
        assert_eq!(opt_i64(o, "b").unwrap_err().status, 400);
        assert_eq!(tags(o).unwrap_err().status, 400);
        let e = key_ops(o, &["sign", "verify"]).unwrap_err();
        assert_eq!(
            e.message,
            "Unsupported key operation(s): \"wrapKey\". Supported values are \"sign\", \"verify\"."
        );
        assert_eq!(req_str(o, "missing").unwrap_err().status, 400);
    }
}
