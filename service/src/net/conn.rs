//! Accepted connections with bounds, for both ports: a cap on open connections
//! (`limits.max_connections`), a deadline for a connection's first request bytes (slowloris) and
//! its TLS handshake, an idle timeout (a connection that sends nothing for a while is closed), and
//! an optional hard lifetime (gRPC's `max_connection_age` + grace). At the cap, the oldest
//! connection that has not yet sent its first request is evicted to make room, so a flood of
//! idle or trickling connections can never lock out a health probe or a real client, which
//! prove themselves within microseconds. gRPC gets the connections as tonic's incoming stream,
//! the HTTP port serves them with hyper.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
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
/// line and a header.
const FIRST_REQUEST_BYTES: usize = 32;

/// Bounds on one port's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most.
    pub max: usize,
    /// Close a connection after this long without a byte from the peer.
    pub idle: Duration,
    /// Deadline for a connection's first request bytes and its TLS handshake.
    pub first_request: Duration,
    /// Close the connection this long after it was accepted, whatever it is doing.
    pub lifetime: Option<Duration>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Shared between a connection and its port's accept loop.
struct Signal {
    /// The connection sent its first request bytes: it is no longer evictable.
    proven: AtomicBool,
    evict: Arc<Notify>,
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
    /// Bytes still to come before the first request counts as sent (see FIRST_REQUEST_BYTES).
    unproven: usize,
    /// The first-request deadline, then the idle deadline.
    deadline: Pin<Box<Sleep>>,
    lifetime: Option<Pin<Box<Sleep>>>,
    evicted: Pin<Box<OwnedNotified>>,
    signal: Arc<Signal>,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    _slot: Slot,
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
        if this.unproven > 0 && this.evicted.as_mut().poll(cx).is_ready() {
            return closed("connection evicted: the port is at limits.max_connections");
        }
        if let Some(l) = &mut this.lifetime
            && l.as_mut().poll(cx).is_ready()
        {
            return closed("connection reached its maximum age");
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
                    if this.unproven > 0 {
                        this.unproven = this.unproven.saturating_sub(got);
                        if this.unproven == 0 {
                            this.signal.proven.store(true, Ordering::Release);
                        }
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

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo { local_addr: self.local, remote_addr: Some(self.remote) }
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

    /// Evicts the oldest connection that has not sent its first request; false if none.
    fn evict_oldest_unproven(&mut self) -> bool {
        let found = self.conns.iter().position(|w| w.upgrade().is_some_and(|s| !s.proven.load(Ordering::Acquire)));
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
        if open.len() >= limits.max && !open.evict_oldest_unproven() {
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
        let signal = Arc::new(Signal { proven: AtomicBool::new(false), evict: Arc::clone(&evict) });
        open.conns.push_back(Arc::downgrade(&signal));
        let local = stream.local_addr().ok();
        let slot = Slot { metrics: Arc::clone(&metrics), port };
        let conn = move |io| Conn {
            io,
            idle: limits.idle,
            unproven: FIRST_REQUEST_BYTES,
            deadline: Box::pin(tokio::time::sleep(limits.first_request)),
            lifetime: limits.lifetime.map(|l| Box::pin(tokio::time::sleep(l))),
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
