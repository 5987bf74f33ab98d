//! A small HTTP/1.1 client over std `TcpStream`: one request per connection, Content-Length,
//! chunked and read-to-close bodies, and resumable chunked watch streams.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Socket timeout for plain requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}); content-type {:?}:\n{}",
                self.status,
                self.header("content-type"),
                truncate(&self.text(), 2000)
            )
        })
    }

    /// A one-line summary for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "HTTP {} content-type={:?} body={}",
            self.status,
            self.header("content-type"),
            truncate(&self.text(), 1500)
        )
    }
}

/// The first `n` characters of `s` (with a marker when cut).
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!(
            "{}…[{} bytes]",
            s.chars().take(n).collect::<String>(),
            s.len()
        )
    }
}

fn write_request(
    s: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if close {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some(b) = body {
        // A server may answer (413) and close before reading a large body: a failed write is
        // not the end of the exchange, the response is what counts.
        if let Err(e) = s.write_all(b) {
            if !matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                return Err(e);
            }
        }
    }
    s.flush()
}

/// Reads the status line and headers.
fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "headers cut short",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"))
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write_request(&mut s, addr, method, path, headers, body, true)?;
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r)?;
    let mut body = Vec::new();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if is_chunked(&headers) {
        ChunkedReader::new(r).read_to_end(&mut body)?;
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if method != "HEAD" && status != 204 && status != 304 {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `request`, panicking with context on an I/O error.
pub fn must(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// GET with `Accept: application/json`.
pub fn get(addr: &str, path: &str) -> Response {
    must(addr, "GET", path, &[("Accept", "application/json")], None)
}

/// A request with a JSON (or other) body of `content_type`.
pub fn send(addr: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> Response {
    must(
        addr,
        method,
        path,
        &[
            ("Accept", "application/json"),
            ("Content-Type", content_type),
        ],
        Some(body),
    )
}

/// POST a JSON object.
pub fn post_json(addr: &str, path: &str, obj: &Value) -> Response {
    send(
        addr,
        "POST",
        path,
        "application/json",
        obj.to_string().as_bytes(),
    )
}

/// PUT a JSON object.
pub fn put_json(addr: &str, path: &str, obj: &Value) -> Response {
    send(
        addr,
        "PUT",
        path,
        "application/json",
        obj.to_string().as_bytes(),
    )
}

/// Decodes `Transfer-Encoding: chunked`, resumable after a read timeout.
pub struct ChunkedReader<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    /// The CRLF after a chunk is still to be read.
    need_crlf: bool,
    /// A partially read size/CRLF line.
    line: Vec<u8>,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    /// Wraps `inner` positioned at the first chunk.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            left: 0,
            need_crlf: false,
            line: Vec::new(),
            done: false,
        }
    }

    fn read_line_resumable(&mut self) -> io::Result<Option<String>> {
        let n = self.inner.read_until(b'\n', &mut self.line)?;
        if n == 0 && !self.line.ends_with(b"\n") {
            return Ok(None);
        }
        if !self.line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "partial line"));
        }
        let l = String::from_utf8_lossy(&self.line).trim().to_string();
        self.line.clear();
        Ok(Some(l))
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if self.need_crlf {
                match self.read_line_resumable()? {
                    Some(_) => self.need_crlf = false,
                    None => return Err(io::ErrorKind::UnexpectedEof.into()),
                }
            }
            if self.left == 0 {
                let Some(size_line) = self.read_line_resumable()? else {
                    // Connection closed between chunks: treat as the end of the stream.
                    self.done = true;
                    return Ok(0);
                };
                let hex = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size {size_line:?}"),
                    )
                })?;
                if size == 0 {
                    self.done = true;
                    // Trailer section: best effort.
                    let _ = self.read_line_resumable();
                    return Ok(0);
                }
                self.left = size;
                continue;
            }
            let want = buf.len().min(self.left);
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.left -= n;
            if self.left == 0 {
                self.need_crlf = true;
            }
            return Ok(n);
        }
    }
}

/// A watch (or any newline-delimited JSON stream) read event by event.
pub struct WatchStream {
    /// Status of the response.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    reader: BufReader<ChunkedReader<BufReader<TcpStream>>>,
    /// Raw (for a non-chunked answer: the whole body is read eagerly into here).
    partial: Vec<u8>,
    sock: TcpStream,
    ended: bool,
}

impl WatchStream {
    /// Sends `GET path` (a `watch=true` URL) and reads the response head.
    pub fn open(addr: &str, path: &str, accept: &str) -> io::Result<Self> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        write_request(&mut s, addr, "GET", path, &[("Accept", accept)], None, true)?;
        let sock = s.try_clone()?;
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r)?;
        let chunked = is_chunked(&headers);
        let mut partial = Vec::new();
        let mut ended = false;
        if !chunked {
            // Not a stream (an error answer, or a server without chunking): take the body.
            let _ = r.read_to_end(&mut partial);
            ended = true;
        }
        Ok(Self {
            status,
            headers,
            reader: BufReader::new(ChunkedReader::new(r)),
            partial,
            sock,
            ended,
        })
    }

    /// A response header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event, `Ok(None)` when `timeout` passes first or the stream has ended.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(text.trim()).map(Some).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad event {text:?}: {e}"),
                    )
                });
            }
            if self.ended {
                if self.partial.iter().any(|b| !b.is_ascii_whitespace()) {
                    // A final event without a newline.
                    let text =
                        String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
                    return serde_json::from_str(text.trim()).map(Some).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad event {text:?}: {e}"),
                        )
                    });
                }
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let mut buf = [0u8; 8192];
            match self.reader.read(&mut buf) {
                Ok(0) => self.ended = true,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    self.ended = true
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server has closed the stream.
    pub fn ended(&self) -> bool {
        self.ended && !self.partial.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// Everything left unread (for an error answer).
    pub fn rest_text(&self) -> String {
        String::from_utf8_lossy(&self.partial).into_owned()
    }
}
