//! Liveness of the inference workers: `/healthz` fails when work has been queued for a model
//! version and no worker has taken a batch of it for [`STALL`] (a wedged ONNX Runtime call, a
//! dead worker thread), so the kubelet restarts the pod. A busy server never fails: as long as
//! workers keep taking batches, however long the queue, that is progress. An idle one (nothing
//! queued) never fails either.
//! Each batcher owns a [`Progress`] (registered here) and reports to it: a job queued, a batch
//! taken.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

/// No batch taken for this long while work waits = stalled. Far above any single batch (a
/// full batch of 2 s segments runs in well under a second on CPU), so only a wedge trips it; with
/// the liveness probe's 3 failures 10 s apart, a wedged pod restarts within about 90 s.
pub const STALL: Duration = Duration::from_secs(60);

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
static TRACKED: Mutex<Vec<Weak<Progress>>> = Mutex::new(Vec::new());

fn now_ms() -> u64 {
    BASE.elapsed().as_millis() as u64
}

/// One batcher's queue, as far as liveness needs it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Jobs queued and not yet taken by a worker.
    pending: AtomicUsize,
    /// When a worker last took a batch, or work arrived at an idle queue (ms since BASE).
    last: AtomicU64,
}

impl Progress {
    /// A job was queued.
    pub fn enqueued(&self) {
        if self.pending.fetch_add(1, Ordering::AcqRel) == 0 {
            // The clock starts when work arrives, not at the last batch of an idle spell.
            self.last.store(now_ms(), Ordering::Release);
        }
    }

    /// A worker took `jobs` jobs to run.
    pub fn taken(&self, jobs: usize) {
        self.last.store(now_ms(), Ordering::Release);
        let _ = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some(p.saturating_sub(jobs)));
    }

    /// How long work has waited without a batch taken, when it has waited at least `threshold`.
    pub fn stalled(&self, threshold: Duration) -> Option<Duration> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = Duration::from_millis(now_ms().saturating_sub(self.last.load(Ordering::Acquire)));
        (since >= threshold).then_some(since)
    }
}

/// A new [`Progress`], watched for as long as its owner keeps it.
pub fn track() -> Arc<Progress> {
    let progress = Arc::new(Progress::default());
    let mut tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    tracked.retain(|w| w.strong_count() > 0);
    tracked.push(Arc::downgrade(&progress));
    progress
}

/// The longest stall (at least `threshold`) of any live batcher.
pub fn stalled(threshold: Duration) -> Option<Duration> {
    let tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    tracked.iter().filter_map(Weak::upgrade).filter_map(|p| p.stalled(threshold)).max()
}

/// The liveness answer for a stall threshold.
pub fn liveness(threshold: Duration) -> (StatusCode, String) {
    match stalled(threshold) {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(d) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("inference stalled: work queued and no batch taken for {:.0} s\n", d.as_secs_f64()),
        ),
    }
}

/// `GET /healthz`.
pub async fn healthz() -> (StatusCode, String) {
    let (status, body) = liveness(STALL);
    if status != StatusCode::OK {
        tracing::error!(%body, "liveness failing");
    }
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::{BatchConfig, Batcher};
    use vericlip_core::runtime::ModelSession;

    /// Real batchers on the bundled model: one whose workers keep up with a queue that never
    /// empties (busy: alive throughout), then one with no worker left (stalled: liveness fails,
    /// and recovers when that batcher goes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn liveness_fails_on_a_stalled_batcher_and_never_on_a_busy_one() {
        let threshold = Duration::from_millis(400);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/vericlip-lstm/4");
        let v = vericlip_core::registry::load_version(&dir).unwrap();
        let rt = vericlip_core::runtime::init(None).unwrap();
        let session = ModelSession::from_bytes(rt, &v.model_onnx).unwrap();
        let spec = &v.manifest.feature_spec;
        let (frames, nf) = (spec.frames_per_segment(), spec.n_features());
        let config = BatchConfig { max_batch: 4, max_delay: Duration::ZERO, frames, n_features: nf };
        let metrics = Arc::new(Metrics::new());

        // Busy: 8 callers keep the single worker's queue full for 4 threshold spans.
        let busy = Arc::new(Batcher::start(vec![session], config, Arc::clone(&metrics), "busy"));
        let until = Instant::now() + threshold * 4;
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let b = Arc::clone(&busy);
                tokio::spawn(async move {
                    let mut done = 0usize;
                    while Instant::now() < until {
                        b.run(vec![0.1; 4 * frames * nf], 4, None).await.unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut checks = 0;
        while Instant::now() < until {
            let (status, body) = liveness(threshold);
            assert_eq!(status, StatusCode::OK, "a busy batcher failed liveness: {body}");
            checks += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut batches = 0;
        for c in callers {
            batches += c.await.unwrap();
        }
        assert!(checks > 10 && batches > 8, "{checks} checks, {batches} batches: the load did not run");
        assert_eq!(liveness(threshold).0, StatusCode::OK);

        // Stalled: a batcher whose workers are gone (none started) with a job queued.
        let stalled_batcher = Arc::new(Batcher::start(Vec::new(), config, Arc::clone(&metrics), "stalled"));
        let waiting = {
            let b = Arc::clone(&stalled_batcher);
            tokio::spawn(async move { b.run(vec![0.1; frames * nf], 1, None).await })
        };
        tokio::time::sleep(threshold / 4).await;
        assert_eq!(liveness(threshold).0, StatusCode::OK, "failed before the threshold");
        let started = Instant::now();
        loop {
            let (status, body) = liveness(threshold);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(body.contains("inference stalled"), "{body}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "a stalled batcher never failed liveness");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The version goes (its caller gives up, the batcher is dropped): alive again.
        waiting.abort();
        let _ = waiting.await;
        drop(stalled_batcher);
        assert_eq!(liveness(threshold).0, StatusCode::OK, "liveness did not recover when the stalled batcher went");
    }

    #[test]
    fn idle_is_never_stalled_and_the_clock_starts_when_work_arrives() {
        let p = Progress::default();
        assert_eq!(p.stalled(Duration::ZERO), None, "nothing queued");
        p.enqueued();
        assert!(p.stalled(Duration::ZERO).is_some());
        assert_eq!(p.stalled(Duration::from_secs(3600)), None);
        p.taken(1);
        assert_eq!(p.stalled(Duration::ZERO), None, "all taken");
        p.taken(5); // more than queued (never below zero)
        assert_eq!(p.pending.load(Ordering::Acquire), 0);
    }
}
