//! A TCP proxy between the verifier and a JSON-RPC node that counts the methods going
//! through and breaks on demand ([`Fault`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the proxy treats the next connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Connections are closed at once.
    Down,
    /// Connections are accepted and never answered.
    Hang,
    /// Answers come after this long.
    Slow(Duration),
    /// Every request gets this HTTP status.
    Status(u16),
}

/// The proxy, listening at `url` until the test ends.
pub struct RpcProxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl RpcProxy {
    /// A proxy to the node at `node_url` (`http://host:port`), passing everything on.
    pub async fn start(node_url: &str) -> Self {
        let node = node_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let proxy = RpcProxy {
            url,
            fault: Arc::new(Mutex::new(Fault::None)),
            calls: Arc::default(),
        };
        let (fault, calls) = (proxy.fault.clone(), proxy.calls.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let fault = *fault.lock().unwrap();
                tokio::spawn(pass_on(client, fault, node.clone(), calls.clone()));
            }
        });
        proxy
    }

    /// How the connections from now on are treated.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// How often `method` went through to the node (each call of a batch counts).
    pub fn count(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

/// One client connection, treated as `fault` says.
async fn pass_on(
    mut client: TcpStream,
    fault: Fault,
    node: String,
    calls: Arc<Mutex<Vec<String>>>,
) {
    match fault {
        Fault::Down => return,
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        Fault::Status(status) => {
            let mut request = [0u8; 64 * 1024];
            let _ = client.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 {status} Fault\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::None => {}
    }
    let Ok(node) = TcpStream::connect(&node).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_node, mut to_node) = node.into_split();
    let sniff = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
            record_methods(&buffer[..read], &calls);
            if to_node.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut from_node, &mut to_client).await;
    };
    tokio::join!(sniff, back);
}

/// Notes every `"method":"…"` in a chunk of a request.
fn record_methods(chunk: &[u8], calls: &Mutex<Vec<String>>) {
    let text = String::from_utf8_lossy(chunk);
    for part in text.split("\"method\":\"").skip(1) {
        if let Some(method) = part.split('"').next() {
            calls.lock().unwrap().push(method.to_string());
        }
    }
}
