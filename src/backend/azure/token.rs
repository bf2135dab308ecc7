//! Access tokens the vault refuses are replaced, not offered again.
//!
//! The SDK's bearer policy answers a 401 by asking the credential for a token again, and
//! the credential answers from its own cache, which trusts the token's `expires_on` on
//! *our* clock. When the service refuses a token that our clock still calls valid (the
//! service's clock is ahead, the token was revoked, the principal's tenant moved), the
//! cache hands the same token back, the retry is refused too, and every call fails until
//! the token reaches its refresh window, up to an hour later. `azure_identity` offers no
//! way to drop one cache entry, so this wrapper builds the credential afresh (an empty
//! cache) when the token it returns is one the service has just refused.
//!
//! Hand-written because the SDK has no such hook; it stays small: a refusal is noted by
//! a pipeline policy placed after the bearer policy (it sees the `Authorization` header
//! and the 401), and the credential compares digests, never keeps a second copy of a
//! token.

use super::credential;
use crate::config::Credential;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::ClientOptions;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

/// A credential built from a slot's configuration that renews a token the service
/// refused.
#[derive(Debug)]
pub struct RenewingCredential {
    config: Credential,
    options: ClientOptions,
    inner: Mutex<Arc<dyn TokenCredential>>,
    /// Digest of the last token a vault answered 401 to.
    refused: Mutex<Option<u64>>,
}

fn digest(token: &str) -> u64 {
    let mut h = DefaultHasher::new();
    token.hash(&mut h);
    h.finish()
}

impl RenewingCredential {
    pub fn new(config: &Credential, options: ClientOptions) -> crate::error::Result<Arc<Self>> {
        let inner = credential(config, options.clone())?;
        Ok(Arc::new(RenewingCredential {
            config: config.clone(),
            options,
            inner: Mutex::new(inner),
            refused: Mutex::new(None),
        }))
    }

    /// The service answered 401 to a request that carried `authorization`.
    pub fn note_refused(&self, authorization: &str) {
        let token = authorization
            .strip_prefix("Bearer ")
            .unwrap_or(authorization);
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(digest(token));
    }

    fn current(&self) -> Arc<dyn TokenCredential> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl TokenCredential for RenewingCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = self.current().get_token(scopes, options.clone()).await?;
        let refused = {
            let mut r = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = *r == Some(digest(token.token.secret()));
            if hit {
                *r = None;
            }
            hit
        };
        if !refused {
            return Ok(token);
        }
        tracing::info!("the vault refused a cached access token; requesting a new one");
        let fresh = credential(&self.config, self.options.clone()).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        fresh.get_token(scopes, options).await
    }
}

/// The pipeline policy that tells the credential which token a vault refused. It must
/// run after the bearer policy (a per-try policy of the client options does).
#[derive(Debug)]
pub struct NoteRefusals(pub Arc<RenewingCredential>);

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for NoteRefusals {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let answer = super::next_policy(ctx, request, next).await;
        if let Ok(r) = &answer
            && u16::from(r.status()) == 401
            && let Some(auth) = request
                .headers()
                .get_optional_str(&azure_core::http::headers::AUTHORIZATION)
        {
            self.0.note_refused(auth);
        }
        answer
    }
}
