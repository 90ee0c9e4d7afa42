//! Accepted connections with bounds, for both ports: a cap on open connections
//! (`limits.max_connections`), a deadline for a connection's first request bytes (slowloris) and
//! its TLS handshake, and an idle timeout (a connection that sends nothing for a while is closed);
//! no age limit (gRPC's `max_connection_age` is the gRPC server's GOAWAY: open calls finish). At the cap,
//! the oldest connection that has not yet proven itself is evicted to make room. Proven means the
//! connection delivered a complete request head (HTTP/1 headers up to the blank line, or an
//! HTTP/2 HEADERS block with END_HEADERS after the preface): a byte count is not proof (33
//! bytes of a request, or an HTTP/2 preface and SETTINGS, cost an attacker nothing), while a
//! health probe or a real client proves itself within its first round trip. A proven
//! connection whose request body then trickles is closed by the body's minimum-rate rule
//! (`net::body`). On the admin port (`ConnLimits::evict_idle`), where every request is a probe
//! or a scrape answered in milliseconds, a proven connection that has been quiet the longest is
//! evicted too when no unproven one is left: idle keep-alive connections cannot lock probes out.
//! gRPC gets the connections as the gRPC server's incoming stream, the HTTP port serves them
//! with hyper.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::Metrics;

/// Enough for an HTTP/2 preface (24 bytes) plus a SETTINGS frame header, or an HTTP/1 request
/// line and a header: the first-request deadline is met by these (an idle gRPC channel that
/// sent its preface is not cut), eviction is not (see `Proof`).
const FIRST_REQUEST_BYTES: usize = 32;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Watches the bytes a connection reads until they hold a complete request head.
#[derive(Debug)]
enum Proof {
    /// The first bytes, until they say HTTP/1 or HTTP/2.
    Sniff(Vec<u8>),
    /// HTTP/1: the last bytes seen, to find `\r\n\r\n` across reads.
    H1 {
        last: u32,
    },
    /// HTTP/2 frames: a 9-byte frame header being read, then its payload skipped.
    H2 {
        header: [u8; 9],
        have: usize,
        skip: usize,
    },
    Proven,
}

impl Proof {
    /// Feeds bytes read; true once the connection has sent a complete request head.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            match self {
                Proof::Proven => return true,
                Proof::Sniff(seen) => {
                    let n = (H2_PREFACE.len() - seen.len()).min(data.len());
                    seen.extend_from_slice(&data[..n]);
                    if !H2_PREFACE.starts_with(seen.as_slice()) {
                        // HTTP/1 (or TLS-less junk): replay what was sniffed.
                        let seen = std::mem::take(seen);
                        *self = Proof::H1 { last: 0 };
                        if self.feed(&seen) {
                            return true;
                        }
                        data = &data[n..];
                        continue;
                    }
                    data = &data[n..];
                    if seen.len() == H2_PREFACE.len() {
                        *self = Proof::H2 { header: [0; 9], have: 0, skip: 0 };
                    }
                }
                Proof::H1 { last } => {
                    for &b in data {
                        *last = (*last << 8) | u32::from(b);
                        if *last == u32::from_be_bytes(*b"\r\n\r\n") {
                            *self = Proof::Proven;
                            return true;
                        }
                    }
                    return false;
                }
                Proof::H2 { header, have, skip } => {
                    if *skip > 0 {
                        let n = (*skip).min(data.len());
                        *skip -= n;
                        data = &data[n..];
                        continue;
                    }
                    let n = (9 - *have).min(data.len());
                    header[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data = &data[n..];
                    if *have == 9 {
                        const HEADERS: u8 = 0x1;
                        const CONTINUATION: u8 = 0x9;
                        const END_HEADERS: u8 = 0x4;
                        let (kind, flags) = (header[3], header[4]);
                        if matches!(kind, HEADERS | CONTINUATION) && flags & END_HEADERS != 0 {
                            *self = Proof::Proven;
                            return true;
                        }
                        *skip = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
                        *have = 0;
                    }
                }
            }
        }
        matches!(self, Proof::Proven)
    }
}

/// Bounds on one port's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most.
    pub max: usize,
    /// Close a connection after this long without a byte from the peer.
    pub idle: Duration,
    /// Deadline for a connection's first request bytes and its TLS handshake.
    pub first_request: Duration,
    /// At the cap, with no unproven connection to evict, evict the one quiet the longest (the
    /// admin port: its requests are tiny and quick, so the quietest is an idle keep-alive).
    pub evict_idle: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Shared between a connection and its port's accept loop.
struct Signal {
    /// The connection sent a complete request head: it is no longer evictable (unless the port
    /// evicts idle connections).
    proven: AtomicBool,
    /// When the connection last read or wrote a byte (ms since `EPOCH`).
    active_ms: AtomicU64,
    evict: Arc<Notify>,
}

static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// Frees a connection's place in the open-connections gauge when it closes.
struct Slot {
    metrics: Arc<Metrics>,
    port: &'static str,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.open_connections(self.port).dec();
    }
}

/// One accepted connection: plain or TLS, with deadlines on reads.
pub struct Conn {
    io: Io,
    idle: Duration,
    /// Eviction applies to this connection even once proven (`ConnLimits::evict_idle`).
    evict_idle: bool,
    /// Bytes still to come before the first-request deadline is met (see FIRST_REQUEST_BYTES).
    unproven: usize,
    proof: Proof,
    /// The first-request deadline, then the idle deadline.
    deadline: Pin<Box<Sleep>>,
    evicted: Pin<Box<OwnedNotified>>,
    signal: Arc<Signal>,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    _slot: Slot,
}

impl Conn {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Our end's address, when the socket could tell.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

impl Conn {
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }
}

fn closed(why: &'static str) -> Poll<io::Result<()>> {
    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if (this.evict_idle || !matches!(this.proof, Proof::Proven)) && this.evicted.as_mut().poll(cx).is_ready() {
            return closed("connection evicted: the port is at its connection cap");
        }
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(result) => {
                let got = buf.filled().len() - before;
                if got > 0 {
                    this.signal.active_ms.store(now_ms(), Ordering::Relaxed);
                    this.unproven = this.unproven.saturating_sub(got);
                    if !matches!(this.proof, Proof::Proven) && this.proof.feed(&buf.filled()[before..]) {
                        this.signal.proven.store(true, Ordering::Release);
                    }
                    if this.unproven == 0 {
                        let next = Instant::now() + this.idle;
                        this.deadline.as_mut().reset(next);
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return if this.unproven > 0 {
                        closed("no request within http.header_read_timeout_seconds")
                    } else {
                        closed("connection idle for limits.connection_idle_seconds")
                    };
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.signal.active_ms.store(now_ms(), Ordering::Relaxed);
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.signal.active_ms.store(now_ms(), Ordering::Relaxed);
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The port's open connections, oldest first, as far as eviction needs to know them.
#[derive(Default)]
struct Open {
    conns: VecDeque<Weak<Signal>>,
}

impl Open {
    fn len(&mut self) -> usize {
        self.conns.retain(|w| w.strong_count() > 0);
        self.conns.len()
    }

    /// Evicts the oldest connection that has not sent a complete request head; failing that,
    /// with `idle_too`, the one quiet the longest. False if none.
    fn evict(&mut self, idle_too: bool) -> bool {
        let unproven = self.conns.iter().position(|w| w.upgrade().is_some_and(|s| !s.proven.load(Ordering::Acquire)));
        let quietest = || {
            let quiet_since = |w: &Weak<Signal>| w.upgrade().map_or(u64::MAX, |s| s.active_ms.load(Ordering::Relaxed));
            (0..self.conns.len()).min_by_key(|&i| quiet_since(&self.conns[i]))
        };
        let found = unproven.or_else(|| if idle_too { quietest() } else { None });
        match found.and_then(|i| self.conns.remove(i)).and_then(|w| w.upgrade()) {
            Some(s) => {
                s.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Accepts connections on `listener` until `out` is closed, applying `limits` and TLS, and
/// hands each ready connection to `out`.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    port: &'static str,
    out: mpsc::Sender<io::Result<Conn>>,
) {
    let mut open = Open::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = out.closed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the loop never exits on them.
                tracing::warn!(port, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        metrics.accepted_connection(port);
        if open.len() >= limits.max && !open.evict(limits.evict_idle) {
            // Every open connection is a client at work: refuse this one.
            metrics.refused_connection(port);
            drop(stream);
            continue;
        }
        // Small request/response messages: without TCP_NODELAY, Nagle plus delayed ACKs add
        // ~40 ms to a share of calls (measured: p99 44 ms at concurrency 1).
        let _ = stream.set_nodelay(true);
        metrics.open_connections(port).inc();
        let evict = Arc::new(Notify::new());
        let signal = Arc::new(Signal {
            proven: AtomicBool::new(false),
            active_ms: AtomicU64::new(now_ms()),
            evict: Arc::clone(&evict),
        });
        open.conns.push_back(Arc::downgrade(&signal));
        let local = stream.local_addr().ok();
        let slot = Slot { metrics: Arc::clone(&metrics), port };
        let conn = move |io| Conn {
            io,
            idle: limits.idle,
            evict_idle: limits.evict_idle,
            unproven: FIRST_REQUEST_BYTES,
            proof: Proof::Sniff(Vec::with_capacity(H2_PREFACE.len())),
            deadline: Box::pin(tokio::time::sleep(limits.first_request)),
            evicted: Box::pin(evict.notified_owned()),
            signal,
            remote,
            local,
            _slot: slot,
        };
        match &tls {
            None => {
                if out.send(Ok(conn(Io::Plain(stream)))).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, out) = (acceptor.clone(), out.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(limits.first_request, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = out.send(Ok(conn(Io::Tls(Box::new(s))))).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{H2_PREFACE, Proof};

    fn fresh() -> Proof {
        Proof::Sniff(Vec::new())
    }

    #[test]
    fn http1_is_proven_by_a_complete_head_in_any_pieces() {
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut p = fresh();
        // 33 bytes of a request are not proof.
        assert!(!p.feed(&head[..33]));
        assert!(p.feed(&head[33..]));
        for cut in 1..head.len() {
            let mut p = fresh();
            let first = p.feed(&head[..cut]);
            assert!(!first, "cut {cut}");
            assert!(p.feed(&head[cut..]), "cut {cut}");
        }
    }

    #[test]
    fn http2_is_proven_by_a_headers_block_not_by_the_preface_and_settings() {
        let mut bytes = H2_PREFACE.to_vec();
        // SETTINGS (type 4), 6 bytes of payload; then a WINDOW_UPDATE (type 8) of 4.
        bytes.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        bytes.extend_from_slice(&[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut p = fresh();
        assert!(!p.feed(&bytes));
        // HEADERS without END_HEADERS, then CONTINUATION with it.
        let mut p2 = fresh();
        let mut more = bytes.clone();
        more.extend_from_slice(&[0, 0, 2, 1, 0, 0, 0, 0, 1, 0x82, 0x86]);
        assert!(!p2.feed(&more));
        assert!(p2.feed(&[0, 0, 1, 9, 4, 0, 0, 0, 1, 0x84]));
        // Byte by byte, HEADERS with END_HEADERS proves.
        bytes.extend_from_slice(&[0, 0, 1, 1, 4 | 1, 0, 0, 0, 1, 0x82]);
        let mut p3 = fresh();
        let proven: Vec<bool> = bytes.iter().map(|b| p3.feed(&[*b])).collect();
        assert_eq!(proven.iter().position(|p| *p), Some(bytes.len() - 2));
    }
}
