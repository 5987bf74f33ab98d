//! The test harness itself: the HTTP client's chunked decoding and watch-event framing (against
//! an in-process loopback server that splits events across chunks and pauses mid-event), and the
//! kubectl table parsing helpers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::http::{self, WatchStream};
use crate::support::{table_header, table_row};

/// Serves one connection: reads the request head, writes `head`, then each `(bytes, pause_rx)`
/// piece, waiting for a go-ahead on `gate` before the pieces marked `true`.
fn one_shot_server(head: &'static str, pieces: Vec<(Vec<u8>, bool)>) -> (String, mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).expect("read request");
            if n == 0 {
                return;
            }
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(head.as_bytes()).expect("head");
        for (bytes, gated) in pieces {
            if gated && rx.recv_timeout(Duration::from_secs(20)).is_err() {
                return;
            }
            s.write_all(&bytes).expect("piece");
            s.flush().expect("flush");
        }
    });
    (addr, tx)
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

#[test]
fn watch_stream_reassembles_events_across_chunks_and_pauses() {
    let e1 = br#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}"#;
    let e2 = br#"{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}}"#;
    let mut first = e1.to_vec();
    first.push(b'\n');
    first.extend_from_slice(&e2[..20]);
    let mut second = e2[20..].to_vec();
    second.push(b'\n');
    let (addr, gate) = one_shot_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        vec![
            (chunk(&first), false),
            // The rest of event 2 comes only when the test says so; the chunk header and the
            // data arrive separately.
            (format!("{:x}\r\n", second.len()).into_bytes(), true),
            ([second.clone(), b"\r\n".to_vec()].concat(), true),
            (b"0\r\n\r\n".to_vec(), true),
        ],
    );
    let mut w = WatchStream::open(&addr, "/w?watch=true", "application/json").expect("open");
    assert_eq!(w.status, 200);
    assert!(w.header("transfer-encoding").is_some());
    let ev = w
        .next_event(Duration::from_secs(5))
        .expect("io")
        .expect("event 1");
    assert_eq!(ev["type"], "ADDED");
    // Half an event is buffered: no event yet, and the timeout is honoured.
    let t = std::time::Instant::now();
    assert!(w
        .next_event(Duration::from_millis(300))
        .expect("io")
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(250));
    gate.send(()).expect("gate");
    assert!(
        w.next_event(Duration::from_millis(300))
            .expect("io")
            .is_none(),
        "only a chunk header so far"
    );
    gate.send(()).expect("gate");
    let ev = w
        .next_event(Duration::from_secs(5))
        .expect("io")
        .expect("event 2");
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], "6");
    gate.send(()).expect("gate");
    assert!(w.next_event(Duration::from_secs(5)).expect("io").is_none());
    assert!(w.ended(), "the last chunk ends the stream");
}

#[test]
fn plain_requests_decode_length_and_chunked_bodies() {
    let (addr, _g) = one_shot_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"kind\":\"Status\"}   ",
        vec![],
    );
    let r = http::get(&addr, "/x");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["kind"], "Status");
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    let (addr, _g) = one_shot_server(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        vec![
            (chunk(b"{\"a\":"), false),
            (chunk(b"1}"), false),
            (b"0\r\n\r\n".to_vec(), false),
        ],
    );
    let r = http::get(&addr, "/y");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["a"], 1);
}

#[test]
fn table_helpers_split_kubectl_columns() {
    let out = "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES\n\
               p1     0/1     Pending   0          5s    <none>   <none>   <none>           <none>\n";
    assert_eq!(
        table_header(out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let row = table_row(out, "p1").expect("row");
    assert_eq!(row.len(), 9);
    assert_eq!(row[2], "Pending");
    assert!(table_row(out, "p2").is_none());
}
