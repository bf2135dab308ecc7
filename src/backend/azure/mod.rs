//! Azure Key Vault and Managed HSM: the async runtime the module owns for them, the HTTP
//! client and credential, the per-vault rate budget, the error table, and the backend.
//!
//! The official SDK crates (`azure_identity`, `azure_security_keyvault_keys`,
//! `azure_security_keyvault_certificates`) do the HTTP, the bearer challenge, token caching
//! and retries with `Retry-After`; this module adds what a PKCS#11 module needs around
//! them: one call = one bounded deadline, a rate budget shared by all sessions, and one
//! `Error` per failure with a log line saying what to do.
// The SDK's models and options are `#[non_exhaustive]` or grow fields between releases:
// they are built from `Default` and assigned, which this lint would turn into literals.
#![allow(clippy::field_reassign_with_default)]

pub mod errors;
pub mod key_vault;
pub mod rate;
pub mod token;

use crate::config::{Credential, CredentialKind};
use crate::error::{Error, Result, ServiceFailure};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The tokio runtime behind the network slots, owned by the module: built at
/// C_Initialize, stopped (threads joined within a bound) at C_Finalize.
pub struct AzureRuntime {
    kind: RuntimeKind,
    stopping: AtomicBool,
    /// Set to true when C_Finalize begins: calls in flight end at once with
    /// CKR_CRYPTOKI_NOT_INITIALIZED, while the runtime still runs (a timer polled after
    /// the runtime is gone would panic).
    cancel: tokio::sync::watch::Sender<bool>,
}

enum RuntimeKind {
    /// Worker threads of our own drive the I/O; callers wait on a handle.
    Threaded {
        runtime: Mutex<Option<tokio::runtime::Runtime>>,
        handle: tokio::runtime::Handle,
    },
    /// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`: no thread of ours; each caller drives the
    /// I/O on its own thread while it waits.
    CallerThread(tokio::runtime::Runtime),
}

/// How long C_Finalize waits for the runtime's threads.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

impl AzureRuntime {
    pub fn new(may_create_threads: bool) -> Result<AzureRuntime> {
        let kind = if may_create_threads {
            // One worker: every connection task and every request task then share one
            // thread, so a call crosses threads only twice (caller → worker → caller).
            // With two workers tasks bounced between them: 3 context switches per
            // C_Sign instead of 2.3 and 0.32 ms of module CPU per call instead of
            // 0.23 ms (`identify-pkcs11 bench`, 32 threads at 20 ms). One worker at
            // 0.2 ms a call serves thousands of calls a second, above any vault's limits.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("identify-pkcs11-io")
                .enable_all()
                .build()
                .map_err(|e| Error::backend("starting the network runtime", e))?;
            let handle = runtime.handle().clone();
            RuntimeKind::Threaded {
                runtime: Mutex::new(Some(runtime)),
                handle,
            }
        } else {
            RuntimeKind::CallerThread(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::backend("starting the network runtime", e))?,
            )
        };
        Ok(AzureRuntime {
            kind,
            stopping: AtomicBool::new(false),
            cancel: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Runs `f` to completion on the calling thread, within `deadline`.
    pub fn run<F: Future>(&self, deadline: Duration, f: F) -> Result<F::Output> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(Error::NotInitialized);
        }
        // The timer is created inside the runtime's context (block_on enters it).
        let timed = self.bounded(deadline, f);
        // A host thread inside a Tokio runtime of its own (an async server calling the
        // module directly) may not block_on another runtime: Tokio panics. There the
        // future is polled on this thread with our runtime's context entered, while our
        // worker drives the I/O and the timers.
        let in_host_runtime = tokio::runtime::Handle::try_current().is_ok();
        match &self.kind {
            RuntimeKind::Threaded { handle, .. } if in_host_runtime => {
                let _context = handle.enter();
                // Unconstrained: Tokio's per-task budget here is the host task's, and once
                // spent, our I/O would wait for a host scheduler tick that never comes
                // while this thread blocks.
                futures::executor::block_on(tokio::task::unconstrained(timed))
            }
            RuntimeKind::Threaded { handle, .. } => handle.block_on(timed),
            RuntimeKind::CallerThread(_) if in_host_runtime => Err(Error::Backend(
                "a call from inside an async runtime needs the module's own I/O thread: \
                 initialize without CKF_LIBRARY_CANT_CREATE_OS_THREADS"
                    .into(),
            )),
            RuntimeKind::CallerThread(rt) => rt.block_on(timed),
        }
    }

    /// Runs `f` to completion within `deadline` as a task on the runtime's own threads
    /// (with `CKF_LIBRARY_CANT_CREATE_OS_THREADS`, on the caller's thread as `run` does).
    ///
    /// Why a task and not `run`: hyper drives each connection in a task of its own on
    /// the runtime, so a request future polled on the caller's thread crosses threads
    /// three times (caller → connection task → reactor → caller); as a task beside the
    /// connection it crosses twice. Measured with `identify-pkcs11 bench` (32 threads,
    /// 20 ms): fewer context switches is the largest share of the module's CPU per call.
    pub fn run_spawned<F>(&self, deadline: Duration, f: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = match &self.kind {
            RuntimeKind::Threaded { handle, .. } => handle,
            RuntimeKind::CallerThread(_) => return self.run(deadline, f),
        };
        if self.stopping.load(Ordering::Acquire) {
            return Err(Error::NotInitialized);
        }
        // A std channel, not Tokio's: waiting on it involves no Tokio context, so it works
        // on any thread (Tokio's blocking_recv panics on a thread inside a host's runtime,
        // and its receiver polled there draws on the host task's budget and can wait
        // forever once that is spent). One message: the task's send never blocks.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timed = self.bounded(deadline, f);
        handle.spawn(async move {
            // The receiver is gone only if the caller's thread was torn down.
            let _ = tx.send(timed.await);
        });
        // A dropped sender: the runtime was shut down under the call.
        rx.recv().unwrap_or(Err(Error::NotInitialized))
    }

    /// `f` bounded by `deadline` and by C_Finalize.
    fn bounded<F: Future>(
        &self,
        deadline: Duration,
        f: F,
    ) -> impl Future<Output = Result<F::Output>> + use<F> {
        let mut cancel = self.cancel.subscribe();
        async move {
            tokio::select! {
                out = tokio::time::timeout(deadline, f) =>
                    out.map_err(|_| Self::timed_out(deadline)),
                _ = cancel.wait_for(|c| *c) => Err(Error::NotInitialized),
            }
        }
    }

    fn timed_out(deadline: Duration) -> Error {
        let kind = ServiceFailure::Timeout;
        // (What was left of the call's deadline: a rate-budget wait came first.)
        let m = format!(
            "no answer within the deadline ({:.1} s left for the request)",
            deadline.as_secs_f32()
        );
        tracing::error!("{m} — {}", kind.advice());
        Error::Remote(kind, m)
    }

    /// First half of C_Finalize: new calls fail, calls in flight end now.
    pub fn cancel(&self) {
        self.stopping.store(true, Ordering::Release);
        self.cancel.send_replace(true);
    }

    /// Stops the runtime: new calls fail, calls in flight end, worker threads are joined
    /// within a bound.
    pub fn shutdown(&self) {
        self.cancel();
        if let RuntimeKind::Threaded { runtime, .. } = &self.kind {
            let rt = runtime.lock().ok().and_then(|mut r| r.take());
            if let Some(rt) = rt {
                rt.shutdown_timeout(SHUTDOWN_BOUND);
            }
        }
    }
}

impl Drop for AzureRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The HTTP client of one vault (connection pool, keep-alive, extra trust anchors),
/// shared by its key, certificate and token requests.
pub fn http_client(ca_pem: Option<&[u8]>, deadline: Duration) -> Result<Arc<reqwest::Client>> {
    // The platform's TLS stack and trust store (native-tls: OpenSSL and its system roots on
    // Linux, SChannel and the Windows certificate store on Windows), as for PostgreSQL.
    let mut b = reqwest::Client::builder()
        .tls_backend_native()
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(30))
        .connect_timeout(deadline.min(Duration::from_secs(10)))
        .timeout(deadline);
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("ca_file: {e}")))?;
        b = b.tls_certs_merge(certs);
    }
    Ok(Arc::new(b.build().map_err(|e| {
        Error::backend("building the HTTP client", e)
    })?))
}

/// SDK client options: our HTTP client, and retries bounded by the call's deadline.
pub fn client_options(
    http: &Arc<reqwest::Client>,
    max_retries: u32,
    deadline: Duration,
    authority_host: Option<&str>,
) -> ClientOptions {
    let mut o = ClientOptions::default();
    o.transport = Some(Transport::new(http.clone()));
    o.retry = RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries,
        max_total_elapsed: azure_core::time::Duration::try_from(deadline)
            .unwrap_or(azure_core::time::Duration::seconds(10)),
        max_delay: azure_core::time::Duration::seconds(4),
    });
    if let Some(host) = authority_host {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.trim_end_matches('/').to_owned();
        o.cloud = Some(Arc::new(custom.into()));
    }
    o
}

/// Adds the metrics' counting to a slot's request pipeline: every call, and every try of
/// it (the tries beyond the first are retries) with its 429 and 5xx answers.
pub fn count_requests(o: &mut ClientOptions, counts: Arc<crate::telemetry::HttpCounts>) {
    o.per_call_policies
        .push(Arc::new(CountCalls(counts.clone())));
    o.per_try_policies.push(Arc::new(CountTries(counts)));
}

#[derive(Debug)]
struct CountCalls(Arc<crate::telemetry::HttpCounts>);

#[derive(Debug)]
struct CountTries(Arc<crate::telemetry::HttpCounts>);

// The SDK's Policy trait is declared with async_trait.
#[async_trait::async_trait]
impl azure_core::http::policies::Policy for CountCalls {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        next_policy(ctx, request, next).await
    }
}

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for CountTries {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        self.0.tries.fetch_add(1, Ordering::Relaxed);
        let answer = next_policy(ctx, request, next).await;
        if let Ok(r) = &answer {
            match u16::from(r.status()) {
                401 => self.0.challenges.fetch_add(1, Ordering::Relaxed),
                429 => self.0.throttled.fetch_add(1, Ordering::Relaxed),
                s if s >= 500 => self.0.server_errors.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        answer
    }
}

async fn next_policy(
    ctx: &azure_core::http::Context<'_>,
    request: &mut azure_core::http::Request,
    next: &[Arc<dyn azure_core::http::policies::Policy>],
) -> azure_core::http::policies::PolicyResult {
    match next.split_first() {
        Some((first, rest)) => first.send(ctx, request, rest).await,
        None => Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Other,
            "no transport after the counting policy",
        )),
    }
}

/// The `x-ms-request-id` of an answer (the audit log's request id).
pub fn request_id(headers: &azure_core::http::headers::Headers) -> Option<String> {
    headers.get_optional_string(&azure_core::http::headers::HeaderName::from_static(
        "x-ms-request-id",
    ))
}

/// The request id of a failed call's answer, if it got one.
pub fn error_request_id(e: &azure_core::Error) -> Option<String> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            raw_response: Some(r),
            ..
        } => request_id(r.headers()),
        _ => None,
    }
}

/// The credential a slot's configuration names.
pub fn credential(c: &Credential, options: ClientOptions) -> Result<Arc<dyn TokenCredential>> {
    let cfg = |e: azure_core::Error| Error::Config(format!("credential: {e}"));
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| Error::Config(format!("credential: {what} missing")))
    };
    Ok(match c.kind {
        CredentialKind::ClientSecret => {
            let secret = need(&c.client_secret, "client secret")?;
            azure_identity::ClientSecretCredential::new(
                &need(&c.tenant_id, "tenant_id")?,
                need(&c.client_id, "client_id")?,
                Secret::new(secret),
                Some(azure_identity::ClientSecretCredentialOptions {
                    client_options: options,
                }),
            )
            .map_err(cfg)?
        }
        CredentialKind::ClientCertificate => {
            let (bytes, password) = c
                .certificate
                .clone()
                .ok_or_else(|| Error::Config("credential: certificate missing".into()))?;
            let mut o = azure_identity::ClientCertificateCredentialOptions::default();
            o.client_options = options;
            o.password = password.map(Secret::new);
            azure_identity::ClientCertificateCredential::new(
                need(&c.tenant_id, "tenant_id")?,
                need(&c.client_id, "client_id")?,
                azure_core::credentials::SecretBytes::new(bytes),
                Some(o),
            )
            .map_err(cfg)?
        }
        CredentialKind::WorkloadIdentity => {
            let mut o = azure_identity::WorkloadIdentityCredentialOptions::default();
            o.credential_options.client_options = options;
            o.client_id = c.client_id.clone();
            o.tenant_id = c.tenant_id.clone();
            o.token_file_path = c.token_file.clone();
            azure_identity::WorkloadIdentityCredential::new(Some(o)).map_err(cfg)?
        }
        CredentialKind::ManagedIdentity => {
            let mut o = azure_identity::ManagedIdentityCredentialOptions::default();
            o.client_options = options;
            o.user_assigned_id = match (&c.client_id, &c.object_id, &c.resource_id) {
                (Some(id), _, _) => Some(azure_identity::UserAssignedId::ClientId(id.clone())),
                (_, Some(id), _) => Some(azure_identity::UserAssignedId::ObjectId(id.clone())),
                (_, _, Some(id)) => Some(azure_identity::UserAssignedId::ResourceId(id.clone())),
                _ => None,
            };
            azure_identity::ManagedIdentityCredential::new(Some(o)).map_err(cfg)?
        }
        CredentialKind::AzureCli => {
            let mut o = azure_identity::AzureCliCredentialOptions::default();
            o.tenant_id = c.tenant_id.clone();
            azure_identity::AzureCliCredential::new(Some(o)).map_err(cfg)?
        }
    })
}
