//! Identity: principals, the RS256 access tokens the emulator issues and checks on every
//! data-plane request, the Entra ID token endpoint (client secret, client assertion by
//! certificate, federated workload-identity assertion) and the App Service
//! managed-identity endpoint (FACTS.md §4).

use std::collections::HashMap;
use std::sync::Mutex;

use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::x509::X509;
use serde_json::{Value, json};

use crate::b64;
use crate::ids;
use crate::reply::Reply;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// An application (service principal) that can get tokens.
pub struct Principal {
    pub client_id: String,
    pub secret: Option<String>,
    pub object_id: String,
    /// Certificates whose keys may sign client assertions: (SHA-1, SHA-256 thumbprints, key).
    pub certificates: Vec<(Vec<u8>, Vec<u8>, PKey<Public>)>,
    pub federated_subject: Option<String>,
}

impl Principal {
    pub fn new(client_id: &str, secret: Option<String>, object_id: Option<String>) -> Self {
        // A stable object id derived from the client id unless one is configured.
        let oid = object_id.unwrap_or_else(|| {
            let h = hash(MessageDigest::sha256(), client_id.as_bytes())
                .map(|d| ids::hex(&d))
                .unwrap_or_else(|_| ids::hex(&ids::random_bytes(32)));
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        });
        Principal {
            client_id: client_id.to_string(),
            secret,
            object_id: oid,
            certificates: Vec::new(),
            federated_subject: None,
        }
    }

    pub fn add_certificate(&mut self, cert: &X509) -> Result<(), String> {
        let der = cert.to_der().map_err(|e| e.to_string())?;
        let sha1 = hash(MessageDigest::sha1(), &der).map_err(|e| e.to_string())?;
        let sha256 = hash(MessageDigest::sha256(), &der).map_err(|e| e.to_string())?;
        let key = cert.public_key().map_err(|e| e.to_string())?;
        self.certificates
            .push((sha1.to_vec(), sha256.to_vec(), key));
        Ok(())
    }
}

#[derive(Default)]
pub struct Principals {
    pub list: Vec<Principal>,
}

impl Principals {
    pub fn find(&self, client_id: &str) -> Option<&Principal> {
        self.list
            .iter()
            .find(|p| p.client_id.eq_ignore_ascii_case(client_id))
    }
}

/// The claims of a verified access token that the data plane uses.
#[derive(Debug, Clone)]
pub struct Caller {
    pub appid: String,
    pub oid: String,
}

/// A fresh RSA-2048 key for RS256 signing.
pub fn new_signing_key() -> Result<PKey<Private>, String> {
    let rsa = openssl::rsa::Rsa::generate(2048).map_err(|e| e.to_string())?;
    PKey::from_rsa(rsa).map_err(|e| e.to_string())
}

/// Signs and checks the emulator's tokens.
pub struct TokenIssuer {
    key: PKey<Private>,
    kid: String,
    pub tenant_id: String,
    pub authority_host: String,
    /// Tokens already verified: token → (audience, exp, caller). A token is immutable,
    /// so a hit only needs the audience and expiry checked again.
    verified: Mutex<HashMap<String, (String, i64, Caller)>>,
}

const VERIFIED_CACHE_MAX: usize = 4096;

fn sign_jwt(key: &PKey<Private>, header: &Value, claims: &Value) -> Result<String, String> {
    let input = format!(
        "{}.{}",
        b64::url(header.to_string().as_bytes()),
        b64::url(claims.to_string().as_bytes())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(|e| e.to_string())?;
    signer.update(input.as_bytes()).map_err(|e| e.to_string())?;
    let sig = signer.sign_to_vec().map_err(|e| e.to_string())?;
    Ok(format!("{input}.{}", b64::url(&sig)))
}

/// A JWT split into its parts; nothing is trusted yet.
pub struct UnverifiedJwt {
    pub header: Value,
    pub claims: Value,
    input: String,
    signature: Vec<u8>,
}

impl UnverifiedJwt {
    pub fn parse(token: &str) -> Option<UnverifiedJwt> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&b64::decode(h)?).ok()?;
        let claims: Value = serde_json::from_slice(&b64::decode(c)?).ok()?;
        if !header.is_object() || !claims.is_object() {
            return None;
        }
        Some(UnverifiedJwt {
            header,
            claims,
            input: format!("{h}.{c}"),
            signature: b64::decode(s)?,
        })
    }

    /// Checks an RS256 or PS256 signature.
    pub fn verify_with(&self, key: &PKey<Public>) -> bool {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Ok(mut v) = Verifier::new(MessageDigest::sha256(), key) else {
            return false;
        };
        match alg {
            "RS256" => {}
            "PS256" => {
                if v.set_rsa_padding(Padding::PKCS1_PSS).is_err()
                    || v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).is_err()
                {
                    return false;
                }
            }
            _ => return false,
        }
        v.update(self.input.as_bytes()).is_ok() && v.verify(&self.signature).unwrap_or(false)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim; some clients send fractional seconds.
    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(seconds_of))
    }
}

impl TokenIssuer {
    #[cfg(test)]
    pub fn new(tenant_id: String, authority_host: String) -> Result<Self, String> {
        Self::with_key(new_signing_key()?, tenant_id, authority_host)
    }

    /// An issuer signing with `key` (RSA, for RS256).
    pub fn with_key(
        key: PKey<Private>,
        tenant_id: String,
        authority_host: String,
    ) -> Result<Self, String> {
        Ok(TokenIssuer {
            key,
            kid: ids::hex(&ids::random_bytes(10)),
            tenant_id,
            authority_host,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn sts_issuer(&self) -> String {
        format!("https://sts.windows.net/{}/", self.tenant_id)
    }

    /// The issuer of federated (workload identity) assertions: the emulator's OIDC issuer.
    pub fn federation_issuer(&self) -> String {
        format!("{}/federation", self.authority_host)
    }

    /// An access token for `audience` (a resource such as `https://vault.localhost:PORT`).
    pub fn issue(
        &self,
        p: &Principal,
        audience: &str,
        lifetime_s: u64,
        appidacr: &str,
    ) -> Result<(String, i64), String> {
        let now = ids::now();
        let exp = now + i64::try_from(lifetime_s).unwrap_or(3600);
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let claims = json!({
            "aud": audience,
            "iss": self.sts_issuer(),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "appid": p.client_id,
            "appidacr": appidacr,
            "idp": self.sts_issuer(),
            "oid": p.object_id,
            "sub": p.object_id,
            "tid": self.tenant_id,
            "uti": b64::url(&ids::random_bytes(16)),
            "ver": "1.0",
        });
        Ok((sign_jwt(&self.key, &header, &claims)?, exp))
    }

    /// A federated assertion as a Kubernetes service-account token would be.
    pub fn issue_federated(&self, subject: &str, lifetime_s: u64) -> Result<String, String> {
        let now = ids::now();
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let claims = json!({
            "aud": [FEDERATED_AUDIENCE],
            "iss": self.federation_issuer(),
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + i64::try_from(lifetime_s).unwrap_or(3600),
        });
        sign_jwt(&self.key, &header, &claims)
    }

    fn public_key(&self) -> Option<PKey<Public>> {
        let der = self.key.public_key_to_der().ok()?;
        PKey::public_key_from_der(&der).ok()
    }

    /// Verifies an access token for `audience`; the error is the 401 message.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Caller, String> {
        let hit = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some((aud, exp, caller)) = hit {
            if aud == audience && exp > ids::now() {
                return Ok(caller);
            }
        }
        let caller = self.verify_uncached(token, audience)?;
        let mut cache = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.clear();
        }
        let exp = UnverifiedJwt::parse(token)
            .and_then(|j| j.claim_i64("exp"))
            .unwrap_or(0);
        cache.insert(
            token.to_string(),
            (audience.to_string(), exp, caller.clone()),
        );
        Ok(caller)
    }

    fn verify_uncached(&self, token: &str, audience: &str) -> Result<Caller, String> {
        let jwt = UnverifiedJwt::parse(token).ok_or_else(|| {
            "[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'.".to_string()
        })?;
        let key = self
            .public_key()
            .ok_or_else(|| "internal key error".to_string())?;
        if jwt.header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str())
            || !jwt.verify_with(&key)
        {
            return Err("[InvalidSignature] Error validating token: 'S2S12003'.".into());
        }
        let aud = jwt.claim_str("aud").unwrap_or_default();
        if aud != audience {
            return Err(format!(
                "AKV10022: Invalid audience. Expected {audience}, found: {aud}."
            ));
        }
        if jwt.claim_str("tid") != Some(self.tenant_id.as_str())
            || jwt.claim_str("iss") != Some(self.sts_issuer().as_str())
        {
            return Err(format!(
                "AKV10032: Invalid issuer. Expected one of {}, found {}.",
                self.sts_issuer(),
                jwt.claim_str("iss").unwrap_or_default()
            ));
        }
        let now = ids::now();
        if jwt.claim_i64("exp").is_none_or(|exp| exp <= now) {
            return Err("[TokenExpired] Error validating token: 'S2S12086'.".into());
        }
        if jwt.claim_i64("nbf").is_some_and(|nbf| nbf > now + 300) {
            return Err("[TokenNotYetValid] Error validating token: 'S2S12087'.".into());
        }
        Ok(Caller {
            appid: jwt.claim_str("appid").unwrap_or_default().to_string(),
            oid: jwt.claim_str("oid").unwrap_or_default().to_string(),
        })
    }

    /// Checks a workload-identity assertion this emulator issued; returns its subject.
    pub fn verify_federated(&self, token: &str) -> Result<String, String> {
        let jwt = UnverifiedJwt::parse(token).ok_or("the assertion is not a JWT")?;
        let key = self.public_key().ok_or("internal key error")?;
        if !jwt.verify_with(&key) {
            return Err("signature".into());
        }
        if jwt.claim_str("iss") != Some(self.federation_issuer().as_str()) {
            return Err("issuer".into());
        }
        let aud_ok = match jwt.claims.get("aud") {
            Some(Value::String(s)) => s == FEDERATED_AUDIENCE,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(FEDERATED_AUDIENCE)),
            _ => false,
        };
        if !aud_ok {
            return Err("audience".into());
        }
        if jwt.claim_i64("exp").is_none_or(|e| e <= ids::now()) {
            return Err("expired".into());
        }
        Ok(jwt.claim_str("sub").unwrap_or_default().to_string())
    }

    pub fn jwks(&self) -> Value {
        let mut keys = Vec::new();
        if let Ok(rsa) = self.key.rsa() {
            keys.push(json!({
                "kty": "RSA", "use": "sig", "kid": self.kid,
                "n": b64::url(&rsa.n().to_vec()), "e": b64::url(&rsa.e().to_vec()),
            }));
        }
        json!({ "keys": keys })
    }
}

/// Entra ID's error shape for the token endpoint.
pub fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    let now = ids::now();
    Reply::with_status(
        status,
        Some(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {now}", ids::guid(), ids::guid()),
            "error_codes": [code],
            "timestamp": now.to_string(),
            "trace_id": ids::guid(),
            "correlation_id": ids::guid(),
            "error_uri": "https://login.microsoftonline.com/error?code=".to_string() + &code.to_string(),
        })),
    )
}

/// What the token endpoint needs from the rest of the emulator.
pub struct TokenContext<'a> {
    pub issuer: &'a TokenIssuer,
    pub principals: &'a Principals,
    /// Resources tokens can be issued for (`https://vault.localhost:PORT`, …).
    pub resources: &'a [String],
    pub lifetime_s: u64,
    /// `https://login.localhost:PORT/{tenant}/oauth2/v2.0/token`
    pub token_endpoint: String,
}

/// `POST {authority}/{tenant}/oauth2/v2.0/token` (client credentials). Returns the reply
/// and the client id it authenticated, if any.
pub fn token_endpoint(
    ctx: &TokenContext<'_>,
    tenant: &str,
    body: &[u8],
) -> (Reply, Option<String>) {
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let issuer = ctx.issuer;
    if !tenant.eq_ignore_ascii_case(&issuer.tenant_id) {
        return (
            entra_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ),
            None,
        );
    }
    match get("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return (
                entra_error(
                    400,
                    "unsupported_grant_type",
                    70003,
                    &format!("The app requested an unsupported grant type '{other}'."),
                ),
                None,
            );
        }
        None => {
            return (
                entra_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.",
                ),
                None,
            );
        }
    }
    let Some(client_id) = get("client_id") else {
        return (
            entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            ),
            None,
        );
    };
    let scope = get("scope").unwrap_or_default();
    let resource = match scope.strip_suffix("/.default") {
        Some(r) if !scope.contains(' ') => r,
        _ => {
            return (
                entra_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ),
                None,
            );
        }
    };
    if !ctx.resources.iter().any(|r| r == resource) {
        return (
            entra_error(
                400,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            ),
            None,
        );
    }
    let Some(principal) = ctx.principals.find(client_id) else {
        return (
            entra_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            ),
            None,
        );
    };
    let appidacr = if let Some(secret) = get("client_secret") {
        if principal.secret.as_deref() != Some(secret) {
            return (
                entra_error(
                    401,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ),
                None,
            );
        }
        "1"
    } else if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type") != Some(JWT_BEARER) {
            return (
                entra_error(
                    400,
                    "invalid_request",
                    700023,
                    "The client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                ),
                None,
            );
        }
        if let Err(r) = check_assertion(ctx, principal, assertion) {
            return (r, None);
        }
        "2"
    } else {
        return (
            entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ),
            None,
        );
    };
    match issuer.issue(principal, resource, ctx.lifetime_s, appidacr) {
        Ok((token, _)) => (
            Reply::ok(json!({
                "token_type": "Bearer",
                "expires_in": ctx.lifetime_s,
                "ext_expires_in": ctx.lifetime_s,
                "access_token": token,
            })),
            Some(principal.client_id.clone()),
        ),
        Err(e) => (
            entra_error(
                500,
                "server_error",
                90000,
                &format!("token signing failed: {e}"),
            ),
            None,
        ),
    }
}

/// A client assertion: either signed by one of the principal's certificates (aud = the
/// token endpoint, iss = sub = client id) or a federated token from this emulator's
/// issuer whose subject the principal trusts.
fn check_assertion(
    ctx: &TokenContext<'_>,
    principal: &Principal,
    assertion: &str,
) -> Result<(), Reply> {
    let invalid = |code: u32, msg: &str| entra_error(401, "invalid_client", code, msg);
    let jwt = UnverifiedJwt::parse(assertion)
        .ok_or_else(|| invalid(50027, "JWT token is invalid or malformed."))?;
    if jwt.claim_str("iss") == Some(ctx.issuer.federation_issuer().as_str()) {
        let subject = ctx
            .issuer
            .verify_federated(assertion)
            .map_err(|e| invalid(700024, &format!("Client assertion is not valid ({e}).")))?;
        return if principal.federated_subject.as_deref() == Some(subject.as_str()) {
            Ok(())
        } else {
            Err(entra_error(
                400,
                "invalid_request",
                70021,
                &format!(
                    "No matching federated identity record found for presented assertion subject '{subject}'."
                ),
            ))
        };
    }
    // Thumbprints are base64url by RFC 7515; some clients send standard base64.
    let thumb = |name: &str| {
        jwt.header
            .get(name)
            .and_then(Value::as_str)
            .and_then(b64::decode)
    };
    let (x5t, x5t256) = (thumb("x5t"), thumb("x5t#S256"));
    let key = principal
        .certificates
        .iter()
        .find(|(s1, s256, _)| x5t.as_deref() == Some(s1.as_slice()) || x5t256.as_deref() == Some(s256.as_slice()))
        .map(|(_, _, k)| k)
        .ok_or_else(|| invalid(700027, &format!("The certificate with identifier used to sign the client assertion is not registered on application {}.", principal.client_id)))?;
    if !jwt.verify_with(key) {
        return Err(invalid(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    let aud_ok = match jwt.claims.get("aud") {
        Some(Value::String(s)) => {
            s.eq_ignore_ascii_case(&ctx.token_endpoint)
                || s.eq_ignore_ascii_case(&ctx.issuer.authority_host)
        }
        _ => false,
    };
    if !aud_ok {
        return Err(invalid(
            700016,
            &format!(
                "The audience of the client assertion must be {}.",
                ctx.token_endpoint
            ),
        ));
    }
    if jwt.claim_str("iss") != Some(principal.client_id.as_str())
        || jwt.claim_str("sub") != Some(principal.client_id.as_str())
    {
        return Err(invalid(
            700021,
            "The client assertion's iss and sub claims must be the client id.",
        ));
    }
    let now = ids::now();
    if jwt.claim_i64("exp").is_none_or(|e| e <= now)
        || jwt.claim_i64("nbf").is_some_and(|n| n > now + 300)
    {
        return Err(invalid(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

/// A finite claim in seconds (`exp`, `nbf` as JSON floats) as whole seconds.
#[allow(
    clippy::cast_possible_truncation,
    reason = "`as` saturates, and a claim beyond i64 seconds is as expired as i64::MAX"
)]
fn seconds_of(f: f64) -> i64 {
    f as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new("tenant".into(), "https://login.localhost:1".into()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_are_bound_to_audience() {
        let iss = issuer();
        let p = Principal::new("app", Some("s".into()), None);
        let (tok, _) = iss.issue(&p, "https://vault.localhost:1", 60, "1").unwrap();
        let caller = iss.verify(&tok, "https://vault.localhost:1").unwrap();
        assert_eq!(caller.appid, "app");
        assert!(
            iss.verify(&tok, "https://managedhsm.localhost:1")
                .unwrap_err()
                .starts_with("AKV10022")
        );
        let other = issuer();
        assert!(other.verify(&tok, "https://vault.localhost:1").is_err());
        let (expired, _) = iss.issue(&p, "https://vault.localhost:1", 0, "1").unwrap();
        assert!(
            iss.verify(&expired, "https://vault.localhost:1")
                .unwrap_err()
                .contains("TokenExpired")
        );
        assert!(iss.verify("garbage", "https://vault.localhost:1").is_err());
    }

    #[test]
    fn token_endpoint_checks_secret_scope_and_tenant() {
        let iss = issuer();
        let principals = Principals {
            list: vec![Principal::new("app", Some("s3cret".into()), None)],
        };
        let resources = vec!["https://vault.localhost:1".to_string()];
        let ctx = TokenContext {
            issuer: &iss,
            principals: &principals,
            resources: &resources,
            lifetime_s: 60,
            token_endpoint: "https://login.localhost:1/tenant/oauth2/v2.0/token".into(),
        };
        let ok = b"grant_type=client_credentials&client_id=app&client_secret=s3cret&scope=https%3A%2F%2Fvault.localhost%3A1%2F.default";
        let (r, who) = token_endpoint(&ctx, "tenant", ok);
        assert_eq!((r.status, who.as_deref()), (200, Some("app")));
        let token = r.body.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(iss.verify(&token, "https://vault.localhost:1").is_ok());
        let bad = b"grant_type=client_credentials&client_id=app&client_secret=nope&scope=https%3A%2F%2Fvault.localhost%3A1%2F.default";
        assert_eq!(token_endpoint(&ctx, "tenant", bad).0.status, 401);
        assert_eq!(token_endpoint(&ctx, "other", ok).0.status, 400);
        let bad_scope = b"grant_type=client_credentials&client_id=app&client_secret=s3cret&scope=https%3A%2F%2Fvault.localhost%3A1";
        assert_eq!(token_endpoint(&ctx, "tenant", bad_scope).0.status, 400);
    }
}
