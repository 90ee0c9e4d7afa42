//! Request bodies counted against the memory budget as they arrive, and timed out when they
//! stall: a client that sends most of a large message and stops holds budget (so others are
//! refused rather than the pod OOM-killed) only until `limits.stream_idle_seconds` pass.
//!
//! A body that keeps arriving, but too slowly (1 byte every few seconds resets any stall
//! timer), is closed by a minimum-rate rule: fewer than `limits.body_min_bytes_per_window` bytes
//! within `limits.body_rate_window_seconds` while a body (HTTP) or a message (gRPC) is in
//! progress is `body_too_slow` (DEADLINE_EXCEEDED, HTTP 504). Between a stream's messages no rate
//! applies: a stream that sends no audio is the stream idle rule's.
//!
//! gRPC bodies are read with their framing in mind (1 flag byte, 4 length bytes, message): a
//! message is held at its declared size from its header on, and the largest message of the body
//! stays held until the body is dropped (the gRPC server keeps a decode buffer of that capacity). Other
//! bodies hold everything they received until dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The minimum-rate rule: at least `bytes` within every `window` while a body is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes: u64,
    pub window: Duration,
}

impl Default for MinRate {
    fn default() -> Self {
        Self { bytes: 1024, window: Duration::from_secs(10) }
    }
}

// The process's rule, set once from the config at start (`set_min_rate`): bodies are wrapped in
// places that know only the memory budget and the idle limit.
static MIN_RATE_BYTES: AtomicU64 = AtomicU64::new(1024);
static MIN_RATE_WINDOW_MS: AtomicU64 = AtomicU64::new(10_000);

/// Sets the minimum-rate rule for every body wrapped from now on.
pub fn set_min_rate(rate: MinRate) {
    MIN_RATE_BYTES.store(rate.bytes, Ordering::Relaxed);
    MIN_RATE_WINDOW_MS.store(rate.window.as_millis().max(1) as u64, Ordering::Relaxed);
}

fn min_rate() -> MinRate {
    MinRate {
        bytes: MIN_RATE_BYTES.load(Ordering::Relaxed),
        window: Duration::from_millis(MIN_RATE_WINDOW_MS.load(Ordering::Relaxed)),
    }
}

/// Bytes counted in the current window of the minimum-rate rule.
#[derive(Debug)]
struct RateWindow {
    rule: MinRate,
    /// Start of the current window; `None` while no body or message is in progress.
    since: Option<Instant>,
    bytes: u64,
}

impl RateWindow {
    /// Counts `n` bytes arriving now; `in_progress` says whether a body or message is still
    /// incomplete after them. Err when the window closed with too few bytes.
    fn feed(&mut self, now: Instant, n: u64, in_progress: bool) -> Result<(), ()> {
        let since = *self.since.get_or_insert(now);
        self.bytes += n;
        if now.duration_since(since) >= self.rule.window {
            if self.bytes < self.rule.bytes {
                return Err(());
            }
            self.since = Some(now);
            self.bytes = 0;
        }
        if !in_progress {
            self.since = None;
            self.bytes = 0;
        }
        Ok(())
    }
}

use crate::budget::{MemoryBudget, Reservation};
use crate::error::{ErrorClass, ServiceError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a gRPC body is within its length-prefixed messages, and what it holds: a message is
/// counted at its declared length from its header on (so one the budget cannot hold is refused
/// before it is buffered), and the largest message so far stays counted for the body's life:
/// the gRPC server's decode buffer keeps that capacity until the stream ends.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; 5],
    header_have: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
    /// The current message's declared size with its header (its header so far until complete).
    declared: u64,
    /// The largest message (with header) this body has carried.
    largest: u64,
}

impl Framing {
    /// Feeds received bytes; returns the bytes the body holds (see `Framing`).
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        while !data.is_empty() {
            if self.remaining == 0 && self.header_have < 5 {
                let n = (5 - self.header_have).min(data.len());
                self.header[self.header_have..self.header_have + n].copy_from_slice(&data[..n]);
                self.header_have += n;
                self.declared = self.header_have as u64;
                data = &data[n..];
                if self.header_have == 5 {
                    let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                    self.remaining = u64::from(len);
                    self.declared = 5 + u64::from(len);
                    if self.remaining == 0 {
                        self.complete();
                    }
                }
                continue;
            }
            let n = (self.remaining as usize).min(data.len());
            self.remaining -= n as u64;
            data = &data[n..];
            if self.remaining == 0 {
                self.complete();
            }
        }
        self.largest.max(self.declared)
    }

    fn complete(&mut self) {
        self.largest = self.largest.max(self.declared);
        *self = Self { largest: self.largest, ..Self::default() };
    }

    /// A message is partly received.
    fn in_progress(&self) -> bool {
        self.declared > 0
    }
}

/// How a transport reads a refusal from a body's error: the gRPC server looks for its status in the
/// error's source chain, so the gRPC transport supplies one.
pub type RefusalSource = fn(&ServiceError) -> BoxError;

pub struct Budgeted<B> {
    inner: B,
    source: Option<RefusalSource>,
    reservation: Reservation,
    framing: Option<Framing>,
    received: u64,
    idle: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    rate: RateWindow,
}

impl<B> Budgeted<B> {
    /// A gRPC body: holds the message being assembled; a refusal carries `source` (the status).
    pub fn grpc(inner: B, budget: &Arc<MemoryBudget>, idle: Duration, source: RefusalSource) -> Self {
        Self::new(inner, budget, idle, Some(Framing::default()), Some(source))
    }

    /// Any other body: holds all it received.
    pub fn whole(inner: B, budget: &Arc<MemoryBudget>, idle: Duration) -> Self {
        Self::new(inner, budget, idle, None, None)
    }

    fn new(
        inner: B,
        budget: &Arc<MemoryBudget>,
        idle: Duration,
        framing: Option<Framing>,
        source: Option<RefusalSource>,
    ) -> Self {
        let rate = RateWindow { rule: min_rate(), since: None, bytes: 0 };
        Self { inner, source, reservation: budget.reservation(), framing, received: 0, idle, stalled: None, rate }
    }

    /// The body's share of the budget, for its reader to hold while it keeps the bytes.
    pub fn into_reservation(self) -> Reservation {
        self.reservation
    }

    fn refusal(&self, error: ServiceError) -> BoxError {
        let source = self.source.map(|s| s(&error));
        Box::new(BodyRefused { error, source })
    }
}

/// A refused or stalled body. The gRPC server finds its status (the `source`) in the error's
/// source chain and answers with it; the HTTP handler downcasts and answers with the error.
#[derive(Debug)]
pub struct BodyRefused {
    pub error: ServiceError,
    source: Option<BoxError>,
}

impl std::fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for BodyRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The stable name of the minimum-rate refusal.
pub const BODY_TOO_SLOW: &str = "body_too_slow";

fn too_slow(rule: MinRate) -> ServiceError {
    ServiceError::Relayed {
        name: BODY_TOO_SLOW,
        class: ErrorClass::DeadlineExceeded,
        message: format!(
            "the request body arrived too slowly: under {} bytes in {} s (limits.body_min_bytes_per_window, limits.body_rate_window_seconds)",
            rule.bytes,
            rule.window.as_secs_f64()
        ),
    }
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stalled = None;
                if let Some(data) = frame.data_ref() {
                    let (held, in_progress) = match &mut this.framing {
                        Some(f) => (f.feed(data.chunk()), f.in_progress()),
                        None => {
                            this.received += data.remaining() as u64;
                            (this.received, !this.inner.is_end_stream())
                        }
                    };
                    if let Err(e) = this.reservation.set(held) {
                        return Poll::Ready(Some(Err(this.refusal(e.into()))));
                    }
                    if this.rate.feed(Instant::now(), data.remaining() as u64, in_progress).is_err() {
                        let rule = this.rate.rule;
                        return Poll::Ready(Some(Err(this.refusal(too_slow(rule)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                // A gRPC body's messages are decoded as they complete; a whole body stays in
                // memory after its end (its reader holds the bytes: `into_reservation`).
                if this.framing.is_some() {
                    let _ = this.reservation.set(0);
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                let seconds = idle.as_secs_f64();
                Poll::Ready(Some(Err(this.refusal(ServiceError::BodyStalled { seconds }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{Framing, MinRate, RateWindow};
    use std::time::Duration;

    #[test]
    fn a_trickle_under_the_minimum_rate_is_refused_and_pauses_between_messages_are_not() {
        let rule = MinRate { bytes: 100, window: Duration::from_secs(10) };
        let t0 = tokio::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = RateWindow { rule, since: None, bytes: 0 };
        // 1 byte every 4 s: refused once a window has passed with under 100 bytes.
        let refused_at = (0..10).find(|i| w.feed(at(4 * i), 1, true).is_err());
        assert_eq!(refused_at, Some(3));
        // Fast enough: never refused, however long.
        let mut w = RateWindow { rule, since: None, bytes: 0 };
        assert!((0..20).all(|i| w.feed(at(4 * i), 60, true).is_ok()));
        // A message completes, then a long pause: the next message starts a new window.
        let mut w = RateWindow { rule, since: None, bytes: 0 };
        assert!(w.feed(at(0), 10, false).is_ok());
        assert!(w.feed(at(60), 10, true).is_ok());
        assert!(w.feed(at(65), 10, false).is_ok());
    }

    #[test]
    fn framing_holds_each_message_from_its_header_and_the_largest_one_for_the_body() {
        let mut f = Framing::default();
        let mut msg = vec![0u8, 0, 0, 0, 10];
        msg.extend_from_slice(&[7; 10]);
        // Header bytes so far, then the declared size as soon as the header is complete.
        assert_eq!(f.feed(&msg[..3]), 3);
        assert!(f.in_progress());
        assert_eq!(f.feed(&msg[3..9]), 15);
        // The message completes, and the next one's (smaller) header begins in the same frame:
        // the largest message stays held.
        let mut rest = msg[9..].to_vec();
        rest.extend_from_slice(&[0, 0, 0, 0, 2, 1]);
        assert_eq!(f.feed(&rest), 15);
        assert_eq!(f.feed(&[1]), 15);
        assert!(!f.in_progress());
        // A larger one raises it from its header on.
        assert_eq!(f.feed(&[0, 0, 0, 1, 0]), 261);
        // An empty message is complete at its header.
        let mut g = Framing::default();
        assert_eq!(g.feed(&[0, 0, 0, 0, 0]), 5);
        assert!(!g.in_progress());
    }
}
