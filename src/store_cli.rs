//! `navarch store status|transfer-leader|drain`: operator commands that talk to running store
//! members over their client port (plain HTTP/1.1 on loopback or the cluster network).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use navarch_raftstore::server::status::NodeStatus;

/// Store administration commands.
#[derive(clap::Subcommand)]
pub enum StoreAdmin {
    /// Show every shard's leader, term, applied index, revision and size, as each member sees it.
    Status {
        /// Client addresses of the members to ask (`HOST:PORT,...`).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
        endpoints: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move the leadership of a shard to a member.
    TransferLeader {
        /// Client address of any member.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        /// Shard id (see `navarch store status`).
        #[arg(long)]
        shard: u32,
        /// Member id of the new leader.
        #[arg(long)]
        to: u64,
    },
    /// Cluster membership: list, add (learner, then voter once caught up), promote, remove.
    Member {
        #[command(subcommand)]
        op: MemberOp,
    },
    /// Drain a member before maintenance (it hands off every shard leadership), or undo it.
    Drain {
        /// Client address of the member to drain.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        /// Stop draining instead.
        #[arg(long)]
        undo: bool,
    },
}

/// `navarch store member ...`.
#[derive(clap::Subcommand)]
pub enum MemberOp {
    /// List members and their role in every shard.
    List {
        /// Client address of any member.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
    },
    /// Add a member; start it with `navarch store --id ID --initial-cluster-state existing`.
    Add {
        /// Client address of any member.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        /// The new member's id (unique, > 0).
        #[arg(long)]
        id: u64,
        /// The new member's peer address (IP:PORT).
        #[arg(long)]
        peer_addr: String,
        /// Keep it a learner (no automatic promotion).
        #[arg(long)]
        learner: bool,
    },
    /// Promote a caught-up learner to voter.
    Promote {
        /// Client address of any member.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        /// Member id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a member (e.g. a dead one before adding its replacement).
    Remove {
        /// Client address of any member.
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        /// Member id.
        #[arg(long)]
        id: u64,
    },
}

fn member(op: MemberOp) -> Result<()> {
    let (endpoint, method, path) = match op {
        MemberOp::List { endpoint } => (endpoint, "GET", "/members".to_string()),
        MemberOp::Add {
            endpoint,
            id,
            peer_addr,
            learner,
        } => (
            endpoint,
            "POST",
            format!("/members/add?id={id}&peer={peer_addr}&learner={learner}"),
        ),
        MemberOp::Promote { endpoint, id } => {
            (endpoint, "POST", format!("/members/promote?id={id}"))
        }
        MemberOp::Remove { endpoint, id } => (endpoint, "POST", format!("/members/remove?id={id}")),
    };
    let (code, body) = http(&endpoint, method, &path)?;
    if code != 200 {
        bail!("member {method} failed (HTTP {code}): {body}");
    }
    let members: Vec<navarch_raftstore::membership::MemberInfo> =
        serde_json::from_str(&body).with_context(|| format!("unexpected answer: {body}"))?;
    println!("{:<6} {:<22} {:<8} LEARNER IN SHARDS", "ID", "PEER", "ROLE");
    for m in members {
        let shards: Vec<String> = m.learner_in.iter().map(u32::to_string).collect();
        println!(
            "{:<6} {:<22} {:<8} {}",
            m.id,
            m.peer_addr,
            if m.voter { "voter" } else { "learner" },
            shards.join(",")
        );
    }
    Ok(())
}

/// One HTTP/1.1 request to `addr`; returns (status code, body).
fn http(addr: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let sock: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("bad endpoint {addr:?} (want HOST:PORT)"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer of {addr}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status from {addr}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs one admin command.
pub fn run(cmd: StoreAdmin) -> Result<()> {
    match cmd {
        StoreAdmin::Status { endpoints, json } => {
            let mut failed = 0;
            for ep in &endpoints {
                match http(ep, "GET", "/shards").and_then(|(code, body)| {
                    if code != 200 {
                        bail!("{ep}: HTTP {code}: {body}");
                    }
                    Ok(body)
                }) {
                    Ok(body) if json => println!("{body}"),
                    Ok(body) => {
                        let st: NodeStatus = serde_json::from_str(&body)
                            .with_context(|| format!("{ep}: unexpected answer"))?;
                        print_status(ep, &st);
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{e:#}");
                    }
                }
            }
            if failed == endpoints.len() {
                bail!("no member answered");
            }
            Ok(())
        }
        StoreAdmin::TransferLeader {
            endpoint,
            shard,
            to,
        } => {
            let (code, body) = http(
                &endpoint,
                "POST",
                &format!("/shards/transfer?shard={shard}&to={to}"),
            )?;
            if code != 200 {
                bail!("transfer failed (HTTP {code}): {body}");
            }
            println!("{body}");
            Ok(())
        }
        StoreAdmin::Member { op } => member(op),
        StoreAdmin::Drain { endpoint, undo } => {
            let (code, body) = http(&endpoint, "POST", &format!("/drain?on={}", !undo))?;
            if code != 200 {
                bail!("drain failed (HTTP {code}): {body}");
            }
            println!("{body}");
            Ok(())
        }
    }
}

fn print_status(ep: &str, st: &NodeStatus) {
    println!(
        "member {} ({}) at {ep}{}",
        st.member,
        st.name,
        if st.draining { " [draining]" } else { "" }
    );
    println!(
        "{:<5} {:<10} {:<22} {:>6} {:>6} {:>10} {:>10} {:>12}  VOTERS",
        "SHARD", "NAME", "PREFIX", "LEADER", "TERM", "APPLIED", "REVISION", "SIZE"
    );
    for s in &st.shards {
        let voters: Vec<String> = s.voters.iter().map(u64::to_string).collect();
        println!(
            "{:<5} {:<10} {:<22} {:>6} {:>6} {:>10} {:>10} {:>12}  {}",
            s.id,
            s.name,
            if s.prefix.is_empty() {
                "(everything else)"
            } else {
                &s.prefix
            },
            s.leader,
            s.term,
            s.applied_index,
            s.revision,
            s.size_bytes,
            voters.join(",")
        );
    }
}
