//! Graceful shutdown, shared by every transport. On SIGTERM the process drains: readiness
//! answers 503 (both ports keep accepting, so probes get an answer rather than a refused
//! connection), requests that arrived before the drain began finish (an HTTP upload still
//! arriving included), requests that arrive after it are refused with UNAVAILABLE, and streams
//! run on. At `shutdown.drain_seconds` the drain is cut: every stream still open ends as if its
//! client had finished (its windows so far are scored and its summary sent), then closes with a
//! reason (a WebSocket close frame "going away"; gRPC's summary then OK).
//!
//! After the drain, the threads the process joins (the registry watcher, which may be loading a
//! model) get until `shutdown.drain_seconds` + [`JOIN_GRACE`] after the signal ([`join_by`]);
//! one still running then (a hung network volume under the registry, a model load that never
//! ends) is named in a WARN and left behind: the process exits 0 anyway, so that a stuck thread
//! never turns a rolling update into a SIGKILL.
//!
//! The state is process-wide (one server per process): the places that must ask it (admission,
//! stream links, readiness) are reached by requests from both ports and by stream tasks, none of
//! which share anything else that outlives a request.

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

/// Where the process is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// SIGTERM: in-flight work finishes, new work is refused, readiness is 503.
    Draining,
    /// The drain limit passed: open streams end now.
    Cut,
}

static PHASE: LazyLock<watch::Sender<Phase>> = LazyLock::new(|| watch::channel(Phase::Serving).0);
/// HTTP requests whose response is not yet ready (WebSocket sessions are counted as streams).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

tokio::task_local! {
    /// Set around each request's handling: whether it arrived before the drain began.
    static ARRIVED_BEFORE_DRAIN: bool;
}

pub fn phase() -> Phase {
    *PHASE.borrow()
}

pub fn draining() -> bool {
    phase() >= Phase::Draining
}

/// Starts the drain (SIGTERM).
pub fn begin() {
    PHASE.send_if_modified(|p| {
        let was = *p;
        *p = (*p).max(Phase::Draining);
        *p != was
    });
}

/// The drain limit passed: open streams end.
pub fn cut() {
    PHASE.send_replace(Phase::Cut);
}

/// Resolves when the drain is cut (never while serving or draining).
pub async fn cut_signal() {
    let mut rx = PHASE.subscribe();
    let _ = rx.wait_for(|p| *p == Phase::Cut).await;
}

/// True inside the handling of a request that arrived before the drain began: such a request is
/// in flight, and finishes.
pub fn arrived_before_drain() -> bool {
    ARRIVED_BEFORE_DRAIN.try_with(|b| *b).unwrap_or(false)
}

/// HTTP requests in flight (response not yet produced).
pub fn http_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a request's handling marked with whether it arrived before the drain began (see
/// `arrived_before_drain`) and, with `count`, counted in flight until its response is ready.
/// Both ports' services go through it (`server::layers::DrainLayer`).
pub fn track<F: Future>(count: bool, handling: F) -> impl Future<Output = F::Output> {
    let before = !draining();
    let guard = count.then(|| {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        InFlight
    });
    let handling = ARRIVED_BEFORE_DRAIN.scope(before, handling);
    async move {
        let out = handling.await;
        drop(guard);
        out
    }
}

/// How long after the drain limit the joined threads may take (a model load finishing).
pub const JOIN_GRACE: Duration = Duration::from_secs(5);

/// Joins `threads` (a name for the log, and the handle), waiting until `deadline` at most, and
/// never blocking the async threads (it polls). Returns the names of the threads still running
/// at the deadline (left behind, detached).
pub async fn join_by(
    threads: Vec<(&'static str, JoinHandle<()>)>,
    deadline: tokio::time::Instant,
) -> Vec<&'static str> {
    let mut running = threads;
    loop {
        let (finished, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|(_, h)| h.is_finished());
        for (name, handle) in finished {
            if handle.join().is_err() {
                tracing::warn!(thread = name, "the thread panicked before shutdown");
            }
        }
        running = still;
        if running.is_empty() || tokio::time::Instant::now() >= deadline {
            return running.into_iter().map(|(name, _)| name).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_thread_is_named_at_the_deadline_and_a_finished_one_is_joined() {
        let (_keep, wedge) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            // Blocks until the test ends (the sender is dropped then): a wedged reader.
            let _ = wedge.recv();
        });
        let quick = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(50)));
        let started = tokio::time::Instant::now();
        let limit = Duration::from_millis(400);
        let left = join_by(vec![("stuck", stuck), ("quick", quick)], started + limit).await;
        assert_eq!(left, vec!["stuck"]);
        let waited = started.elapsed();
        assert!(waited >= limit && waited < limit + Duration::from_secs(5), "waited {waited:?}");
        // Nothing running: answered at once.
        let done = std::thread::spawn(|| ());
        std::thread::sleep(Duration::from_millis(20));
        assert!(join_by(vec![("done", done)], tokio::time::Instant::now()).await.is_empty());
    }
}
