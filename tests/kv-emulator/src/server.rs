//! Listeners: the HTTPS port (vault, HSM and login hosts by SNI/Host) and the plain-HTTP
//! admin port. A fault may reset a connection: the socket gets SO_LINGER 0 and the
//! connection task is aborted, so the peer sees a TCP RST.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::app::App;
use crate::pipeline::{self, Outcome};

/// Per-connection control: a duplicate of the socket to set SO_LINGER on, and a signal
/// to abort the connection.
struct ConnCtl {
    sock: std::net::TcpStream,
    abort: Notify,
}

impl ConnCtl {
    fn reset(&self) {
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
        self.abort.notify_one();
    }
}

fn split(tcp: TcpStream) -> std::io::Result<(TcpStream, Arc<ConnCtl>)> {
    let std = tcp.into_std()?;
    let dup = std.try_clone()?;
    let tcp = TcpStream::from_std(std)?;
    tcp.set_nodelay(true)?;
    Ok((
        tcp,
        Arc::new(ConnCtl {
            sock: dup,
            abort: Notify::new(),
        }),
    ))
}

pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, app: Arc<App>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok((tcp, ctl)) = split(tcp) else { return };
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc_ctl = ctl.clone();
            let svc = service_fn(move |req| {
                let app = app.clone();
                let ctl = svc_ctl.clone();
                async move {
                    match pipeline::handle(app, req).await {
                        Outcome::Answer(r) => Ok::<_, Infallible>(r),
                        Outcome::Drop => {
                            ctl.reset();
                            std::future::pending().await
                        }
                    }
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                () = ctl.abort.notified() => {}
            }
        });
    }
}

pub async fn serve_admin(listener: TcpListener, app: Arc<App>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(admin::handle(app, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
