//! What a handler returns: a status and a JSON body, or Azure's error shape
//! `{"error":{"code","message","innererror":{"code"}}}` (FACTS.md §5).

use serde_json::{Value, json};

/// A successful (or deliberately shaped) answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn with_status(status: u16, body: Option<Value>) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// An error answer in Key Vault's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub inner: Option<String>,
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            inner: None,
            retry_after: None,
        }
    }

    pub fn inner(mut self, code: &str) -> Self {
        self.inner = Some(code.to_string());
        self
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadParameter", message)
    }

    pub fn key_not_found(name: &str) -> Self {
        ApiError::new(
            404,
            "KeyNotFound",
            format!(
                "A key with (name/id) {name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }

    pub fn deleted_key_not_found(name: &str) -> Self {
        ApiError::new(404, "KeyNotFound", format!("Deleted Key not found: {name}"))
    }

    pub fn certificate_not_found(name: &str) -> Self {
        ApiError::new(
            404,
            "CertificateNotFound",
            format!(
                "A certificate with (name/id) {name} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }

    pub fn secret_not_found(name: &str) -> Self {
        ApiError::new(
            404,
            "SecretNotFound",
            format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(409, "Conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(401, "Unauthorized", message)
    }

    pub fn throttled(retry_after: Option<u64>) -> Self {
        let mut e = ApiError::new(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        );
        e.retry_after = retry_after;
        e
    }

    /// An error with the status a one-shot or rate fault asked for.
    pub fn injected(status: u16, retry_after: Option<u64>) -> Self {
        let mut e = match status {
            400 => ApiError::bad_parameter("Injected fault."),
            401 => ApiError::unauthorized(
                "AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.",
            ),
            403 => ApiError::forbidden("Injected fault.").inner("ForbiddenByRbac"),
            404 => ApiError::new(404, "NotFound", "Injected fault."),
            409 => {
                ApiError::conflict("Key is currently being deleted.").inner("ObjectIsBeingDeleted")
            }
            429 => ApiError::throttled(None),
            500 => ApiError::new(
                500,
                "InternalServerError",
                "The server encountered an internal error. Please retry the request.",
            ),
            502 => ApiError::new(502, "BadGateway", "Bad gateway."),
            503 => ApiError::new(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Please retry the request.",
            ),
            504 => ApiError::new(504, "GatewayTimeout", "The gateway timed out."),
            other => ApiError::new(other, "InjectedFault", "Injected fault."),
        };
        e.retry_after = retry_after;
        e
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(inner) = &self.inner {
            error["innererror"] = json!({"code": inner});
        }
        json!({ "error": error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_azure_shape() {
        let e = ApiError::conflict("Key is currently being deleted.").inner("ObjectIsBeingDeleted");
        assert_eq!(
            e.body(),
            json!({"error":{"code":"Conflict","message":"Key is currently being deleted.","innererror":{"code":"ObjectIsBeingDeleted"}}})
        );
        assert!(
            ApiError::bad_parameter("x").body()["error"]
                .get("innererror")
                .is_none()
        );
    }
}
