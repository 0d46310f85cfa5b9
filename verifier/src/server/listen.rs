//! Listening: the banner a person reads, the listeners (the API's, and `/metrics`'s own
//! unless it is on the main listener or off) within their connection limits, and the
//! shutdown signal.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
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
        let (route, units) = verifier
            .routes
            .first()
            .map(|r| {
                let path = r.pattern.trim_end_matches("/*").to_string();
                (path, r.payment.price().amount)
            })
            .unwrap_or_default();
        // The local mint is no stablecoin the client knows: its cap is named in base
        // units. Without an RPC the client cannot check the network the seller names: it
        // is allowed explicitly (a local network's id changes with its genesis).
        lines.push(format!(
            "Pay it:  cargo run -p x402-client -- fetch http://{address}{route} --keypair {} --max-units {units} --allow-network {}",
            payer.display(),
            s.network.caip2()
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
    if let Some(metrics) = verifier.metrics.clone() {
        match tokio::net::TcpListener::bind(metrics.address).await {
            Ok(bound) => {
                metrics_address = Some(bound.local_addr()?);
                let stop = shutdown.clone();
                let limits = verifier.connections.clone();
                tokio::spawn(async move {
                    let served = serve(bound, metrics.router, &limits, stop).await;
                    if let Err(error) = served {
                        tracing::error!(%error, "the metrics listener stopped");
                    }
                });
            }
            Err(error) if metrics.optional => tracing::warn!(
                %error,
                address = %metrics.address,
                "metrics are not served: their default address is taken (another verifier \
                 on this host?); set [metrics] listen or X402_METRICS_LISTEN"
            ),
            Err(error) => return Err(error),
        }
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
    /// Connections served at once from one peer ([`peer`]); past it, a new connection
    /// from that peer is closed at once. One address cannot take every slot.
    pub max_connections_per_peer: usize,
    /// How long a client has to send a request's head, from when its connection opens
    /// and again from when each answer ends (the keep-alive idle time). A client that
    /// sends nothing, or its head a byte at a time, would otherwise hold its connection,
    /// and a slot, for ever.
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets
/// the requests in flight finish.
///
/// HTTP/1.1 only. hyper bounds an HTTP/1 connection from its first byte (the header
/// read timeout runs from the moment it waits for a head: on a new connection, and after
/// each answer), but not an HTTP/2 one: detecting the protocol waits for the preface
/// without a deadline, and an HTTP/2 connection that has its preface and settings, or
/// has been answered, stays open for as long as the peer answers pings. A client that
/// sends the HTTP/2 preface is refused (hyper closes the connection).
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
    let peers = Peers::new(limits.max_connections_per_peer);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
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
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before accept.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(peer_slot) = peers.admit(address.ip()) else {
            // Closed unread; its slot is free again at once.
            tracing::debug!(peer = %address.ip(), "too many connections from one peer");
            continue;
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
            drop(peer_slot);
            drop(slot);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Who a connection comes from, for the per-peer cap: an IPv4 address, or an IPv6
/// address's /56 (one subscriber's delegation: a host has all of it to pick from, 256
/// networks of /64).
/// An IPv4 address mapped into IPv6 (a dual-stack listener) counts as itself.
pub fn peer(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 72) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

/// The connections each peer holds, within the per-peer cap.
#[derive(Clone)]
struct Peers {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
}

/// One connection counted against its peer until it is dropped.
struct PeerSlot {
    peers: Peers,
    peer: IpAddr,
}

impl Peers {
    fn new(limit: usize) -> Self {
        Peers {
            held: Arc::default(),
            limit: limit.max(1),
        }
    }

    /// Counts a connection from `address`, or `None` when its peer holds the most.
    fn admit(&self, address: IpAddr) -> Option<PeerSlot> {
        let peer = peer(address);
        let mut held = self
            .held
            .lock()
            .expect("never poisoned: no panics under it");
        let count = held.entry(peer).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: self.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.peers.held.lock().expect("never poisoned");
        if let Some(count) = held.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.peer);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_an_ipv4_address_or_an_ipv6_56() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(peer(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(peer(mapped), v4, "a dual-stack listener's IPv4 peer");
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:ff::1".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:100::1".parse().unwrap();
        assert_eq!(peer(one), peer(other));
        assert_eq!(peer(one), peer(next_64), "one /56, 256 /64s");
        assert_eq!(peer(one), "2001:db8:1::".parse::<IpAddr>().unwrap());
        assert_ne!(peer(one), peer(elsewhere));
    }

    #[test]
    fn a_peer_holds_at_most_its_share_and_gets_it_back() {
        let peers = Peers::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = peers.admit(a).unwrap();
        let _second = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none());
        assert!(peers.admit(b).is_some(), "another peer is not affected");
        drop(first);
        assert!(peers.admit(a).is_some());
        assert_eq!(peers.held.lock().unwrap().len(), 1, "b's slot was dropped");
    }
}
