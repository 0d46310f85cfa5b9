//! Listening: the banner a person reads, the listeners (the API's, and `/metrics`'s own
//! when configured) within their connection limits, and the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use x402_protocol::amount::format_units;

use super::Verifier;

/// What a person needs to know to pay, printed at start.
pub fn banner(verifier: &Verifier, address: SocketAddr, metrics: Option<SocketAddr>) -> String {
    let s = verifier.gate.settings();
    let mut lines = vec![format!(
        "x402 verifier on http://{address} ({}, {}, pays {} to {})",
        s.network.v1_name(),
        verifier.ledger_kind,
        s.currency,
        s.pay_to
    )];
    for route in &verifier.routes {
        let methods: Vec<&str> = route.methods.iter().map(|m| m.as_str()).collect();
        let price = format_units(route.payment.price().amount, s.decimals);
        lines.push(format!(
            "  {} http://{address}{} costs {price} {}",
            methods.join("|"),
            route.pattern,
            s.currency
        ));
    }
    if let Some(metrics) = metrics {
        lines.push(format!("  metrics on http://{metrics}/metrics"));
    }
    if let Some(payer) = &verifier.demo_payer {
        lines.push(format!(
            "Demo payer with 100 {}: {}",
            s.currency,
            payer.display()
        ));
        let route = verifier
            .routes
            .first()
            .map(|r| r.pattern.trim_end_matches("/*").to_string())
            .unwrap_or_default();
        lines.push(format!(
            "Pay it:  cargo run -p x402-client -- fetch http://{address}{route} --keypair {}",
            payer.display()
        ));
    }
    lines.join("\n")
}

/// Binds the listeners, prints the banner, and serves until `shutdown` resolves; then
/// lets requests in flight finish.
pub async fn run(
    verifier: Verifier,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(verifier.listen).await?;
    let shutdown = shared(shutdown);
    let mut metrics_address = None;
    if let Some((address, router)) = verifier.metrics.clone() {
        let metrics = tokio::net::TcpListener::bind(address).await?;
        metrics_address = Some(metrics.local_addr()?);
        let stop = shutdown.clone();
        let limits = verifier.connections.clone();
        tokio::spawn(async move {
            let served = serve(metrics, router, &limits, stop).await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    eprintln!(
        "{}",
        banner(&verifier, listener.local_addr()?, metrics_address)
    );
    serve(listener, verifier.router, &verifier.connections, shutdown).await
}

/// What one connection may hold, and how many there may be.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; the next waits in the listen backlog.
    pub max_connections: usize,
    /// How long a client has to send a request's head: a client that sends it a byte at a
    /// time would otherwise hold its connection, and a slot, for ever.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets
/// the requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: &ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before accept.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// One shutdown signal for several servers.
fn shared(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> futures_util::future::Shared<futures_util::future::BoxFuture<'static, ()>> {
    use futures_util::FutureExt;
    shutdown.boxed().shared()
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when it is first awaited: a SIGTERM right after start-up must not kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
