//! Test support: a server on 127.0.0.1:0 over the in-memory storage, and a minimal HTTP/1.1
//! client (plain TCP, chunked decoding, line-by-line watch reading).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use navarch_apiserver::memory::MemoryStorage;
use navarch_apiserver::Config;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub storage: Arc<MemoryStorage>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start() -> Self {
        let storage = Arc::new(MemoryStorage::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut cfg = Config::memory(&addr.to_string());
        cfg.bookmark_interval = Duration::from_secs(1);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(navarch_apiserver::serve(
            cfg,
            storage.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let s = Self {
            addr,
            storage,
            stop: Some(tx),
            task: Some(task),
        };
        // Wait until the server answers (bounded).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), s.get("/livez")).await {
                if r.status == 200 {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server did not start"
            );
            tokio::task::yield_now().await;
        }
        s
    }

    /// Stops the server and waits for it (bounded).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("server stops within 15 s");
            r.unwrap().unwrap();
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        request(self.addr, method, path, headers, body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[("Accept", "application/json")], b"")
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.request(
            "PUT",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Resp {
        self.request(
            "PATCH",
            path,
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, body: &str) -> Resp {
        self.request(
            "DELETE",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }
}

/// A response.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn send_head(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    if close {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading a large body.
    let _ = stream.write_all(body).await;
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    send_head(&mut stream, method, path, headers, body, true).await;
    let mut r = BufReader::new(stream);
    let (status, headers) = read_head(&mut r).await;
    let mut body = Vec::new();
    if is_chunked(&headers) {
        while let Some(chunk) = read_chunk(&mut r).await {
            body.extend_from_slice(&chunk);
        }
    } else {
        r.read_to_end(&mut body).await.unwrap();
    }
    Resp {
        status,
        headers,
        body,
    }
}

async fn read_chunk<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut size = String::new();
    if r.read_line(&mut size).await.ok()? == 0 {
        return None;
    }
    let n = usize::from_str_radix(size.trim(), 16).ok()?;
    if n == 0 {
        return None;
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf).await.ok()?;
    buf.truncate(n);
    Some(buf)
}

/// An open watch: reads one JSON event per line.
pub struct Watch {
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    pub status: u16,
    pub content_type: Option<String>,
}

impl Watch {
    pub async fn open(addr: SocketAddr, path: &str, accept: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        send_head(&mut stream, "GET", path, &[("Accept", accept)], b"", false).await;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader).await;
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone());
        Self {
            reader,
            pending: Vec::new(),
            status,
            content_type,
        }
    }

    /// The next event, or `None` when the stream ends; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, async {
            loop {
                if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=pos).collect();
                    return Some(serde_json::from_slice(&line).expect("event is JSON"));
                }
                let chunk = read_chunk(&mut self.reader).await?;
                self.pending.extend_from_slice(&chunk);
            }
        })
        .await
        .expect("watch event within the deadline")
    }
}
