//! Child processes with deadlines: run to completion (captured output) or stream stdout lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The outcome of one finished (or timed-out) command.
#[derive(Debug, Clone)]
pub struct Run {
    /// What ran (for failure messages).
    pub cmdline: String,
    /// Exit code; `None` if killed by a signal or by the deadline.
    pub code: Option<i32>,
    /// Whether the deadline killed it.
    pub timed_out: bool,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl Run {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A readable dump for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "$ {}\nexit code: {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            if self.timed_out {
                " (killed: deadline)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }
}

fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains([' ', '"', '\'', '{', '}']) || a.is_empty() {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` with optional stdin, killing it after `timeout`.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let line = cmdline(&cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        // A writer thread, so a child that does not read stdin cannot block us.
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for `{line}`: {e}"),
        }
    };
    Run {
        cmdline: line,
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A running command whose stdout is read line by line (e.g. `kubectl get -w`); killed on drop.
pub struct Streaming {
    cmdline: String,
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Streaming {
    /// Starts `cmd`.
    pub fn spawn(cmd: Command) -> Self {
        Self::spawn_inner(cmd, false)
    }

    /// Starts `cmd`, delivering its stderr lines too, prefixed with `stderr: ` (for kubectl
    /// `-v=6` request logs: "the watch is open" is observable).
    pub fn spawn_with_stderr(cmd: Command) -> Self {
        Self::spawn_inner(cmd, true)
    }

    fn spawn_inner(mut cmd: Command, stderr_lines: bool) -> Self {
        let line = cmdline(&cmd);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let tx_out = tx.clone();
        std::thread::spawn(move || {
            let tx = tx_out;
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = if stderr_lines {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut all = String::new();
                for l in BufReader::new(stderr_pipe).lines() {
                    let Ok(l) = l else { break };
                    all.push_str(&l);
                    all.push('\n');
                    let _ = tx.send(format!("stderr: {l}"));
                }
                all
            })
        } else {
            drain(stderr_pipe)
        };
        drop(tx);
        Self {
            cmdline: line,
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits until a new stdout line satisfies `pred`; returns it. Panics after `timeout` with
    /// everything seen so far.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let dump = self.stop_and_describe();
                    panic!("timed out after {timeout:?} waiting for {what}\n{dump}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let dump = self.stop_and_describe();
                    panic!("stdout closed before {what}\n{dump}");
                }
            }
        }
    }

    /// Like [`Streaming::wait_line`], but `None` (the process keeps running) after `timeout`.
    pub fn try_wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for the process to exit by itself (within `timeout`) and returns its outcome.
    pub fn wait_exit(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("running");
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for `{}`: {e}", self.cmdline),
            }
        };
        // The reader thread ends at EOF: collect the rest.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        Run {
            cmdline: self.cmdline.clone(),
            code: status.and_then(|s| s.code()),
            timed_out,
            stdout: self
                .seen
                .iter()
                .filter(|l| !l.starts_with("stderr: "))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            stderr: self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
        }
    }

    /// Kills the process and describes what it printed.
    pub fn stop_and_describe(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        format!(
            "$ {}\n--- stdout so far ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.seen.join("\n"),
            stderr
        )
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
