//! Hostile HTTP servers on 127.0.0.1 for the adapters' robustness tests, shared by the
//! `logline-openai` and `logline-composio` test suites (included with `#[path]`).
//!
//! Responses are raw HTTP/1.1 written on a `TcpListener`, so a server can misbehave in ways
//! a framework would not allow: an endless body, a stall after the headers, a slow drip.
//! [`MemoryWatch`] samples the process's resident memory while a call runs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the server does after reading a request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// The head, then `prefix`, then `filler` repeated until the client goes away.
    Endless {
        head: String,
        prefix: Vec<u8>,
        filler: Vec<u8>,
    },
    /// The head, then `prefix`, then one `byte` every `every` until the client goes away.
    Drip {
        head: String,
        prefix: Vec<u8>,
        byte: u8,
        every: Duration,
    },
    /// The head, then nothing until the client goes away.
    Stall { head: String },
    /// No answer at all until the client goes away.
    Silent,
    /// The head and `body`, then the connection closes.
    Body { head: String, body: Arc<Vec<u8>> },
    /// The head, then `frame` every `every` until the client goes away.
    Repeat {
        head: String,
        frame: Vec<u8>,
        every: Duration,
    },
}

/// A response head with `status` and `content_type`, delimited by closing the connection.
pub fn head(status: u16, content_type: &str) -> String {
    format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
    )
}

/// A server that answers every request with the same [`Behaviour`].
pub struct HostileServer {
    pub addr: SocketAddr,
    /// Request heads received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl HostileServer {
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), behaviour).await
    }

    /// Serves on `addr` (a port picked earlier, e.g. one a client is already retrying).
    pub async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (reqs, conns) = (requests.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let task = tokio::spawn(serve(socket, behaviour.clone(), reqs.clone()));
                conns.lock().unwrap().push(task);
            }
        });
        HostileServer {
            addr,
            requests,
            accept,
            connections,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.connections.lock().unwrap().iter() {
            task.abort();
        }
    }
}

async fn serve(mut socket: TcpStream, behaviour: Behaviour, requests: Arc<Mutex<Vec<String>>>) {
    let Some(request_head) = read_request(&mut socket).await else {
        return;
    };
    requests.lock().unwrap().push(request_head);
    let _ = behave(&mut socket, behaviour).await;
}

/// Reads one request (head and `content-length` body); returns the head.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut have = buf.len() - end;
    while have < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        have += n;
    }
    Some(head)
}

async fn behave(socket: &mut TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
    match behaviour {
        Behaviour::Endless {
            head,
            prefix,
            filler,
        } => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&prefix).await?;
            loop {
                socket.write_all(&filler).await?;
            }
        }
        Behaviour::Drip {
            head,
            prefix,
            byte,
            every,
        } => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&prefix).await?;
            loop {
                tokio::time::sleep(every).await;
                socket.write_all(&[byte]).await?;
            }
        }
        Behaviour::Stall { head } => {
            socket.write_all(head.as_bytes()).await?;
            wait_for_close(socket).await
        }
        Behaviour::Silent => wait_for_close(socket).await,
        Behaviour::Body { head, body } => {
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body).await?;
            socket.shutdown().await
        }
        Behaviour::Repeat { head, frame, every } => {
            socket.write_all(head.as_bytes()).await?;
            loop {
                socket.write_all(&frame).await?;
                tokio::time::sleep(every).await;
            }
        }
    }
}

async fn wait_for_close(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut sink = [0u8; 1024];
    while socket.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Samples the resident set size every few milliseconds on a thread until stopped.
pub struct MemoryWatch {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Resident memory of this process (Linux `/proc/self/statm`, 4 KiB pages); 0 elsewhere.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

impl MemoryWatch {
    pub fn start() -> Self {
        let baseline = rss_bytes();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        MemoryWatch {
            baseline,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak growth over the baseline, in bytes.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak
            .load(Ordering::Relaxed)
            .max(rss_bytes())
            .saturating_sub(self.baseline)
    }
}

/// Runs `call` while watching memory; prints a line with the figures and returns the peak
/// growth in MiB and the elapsed time.
pub async fn measure<T>(
    label: &str,
    call: impl std::future::Future<Output = T>,
) -> (T, f64, Duration) {
    let watch = MemoryWatch::start();
    let started = std::time::Instant::now();
    let out = call.await;
    let elapsed = started.elapsed();
    let grown = watch.stop() as f64 / (1024.0 * 1024.0);
    println!("hostile: {label}: ended after {elapsed:.2?}, peak RSS growth {grown:.1} MiB");
    (out, grown, elapsed)
}
