//! Liveness of every pool that does a request's work: `/healthz` fails when work has waited on
//! a pool for [`STALL`] with no progress (a wedged ONNX Runtime call, a frozen decoder, a dead
//! thread), so the kubelet restarts the pod. Watched, each on its own [`Progress`]:
//! - each model version's batch queue (work queued, no batch taken),
//! - each inference worker (a batch in hand, no chunk of it finished: one wedged worker of
//!   several is seen, although the others keep the queue moving),
//! - the feature/decode pool's queue (jobs queued, none started) and each of its threads (a job
//!   in hand, not finished).
//!
//! A busy server never fails: as long as the work moves, however long the queue, that is
//! progress. An idle one (nothing waiting) never fails either.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

/// No progress for this long while work waits = stalled. Far above any single step (a full
/// batch of 2 s segments runs in well under a second on CPU, a clip's decode and features in a
/// few), so only a wedge trips it; with the liveness probe's 3 failures 10 s apart, a wedged pod
/// restarts within about 90 s.
pub const STALL: Duration = Duration::from_secs(60);

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
static TRACKED: Mutex<Vec<Weak<Progress>>> = Mutex::new(Vec::new());

fn now_ms() -> u64 {
    BASE.elapsed().as_millis() as u64
}

/// One queue's or one worker's work, as far as liveness needs it.
#[derive(Debug, Default)]
pub struct Progress {
    /// What it is, for the liveness answer ("inference worker vericlip-lstm/4-1").
    name: String,
    /// Jobs waiting (queued, or in a worker's hands) and not yet taken or finished.
    pending: AtomicUsize,
    /// When work last moved, or work arrived at an idle queue (ms since BASE).
    last: AtomicU64,
}

impl Progress {
    /// A job was queued (or taken in hand, for a worker).
    pub fn enqueued(&self) {
        self.enqueued_many(1);
    }

    /// `jobs` jobs were queued (or taken in hand, for a worker).
    pub fn enqueued_many(&self, jobs: usize) {
        if jobs > 0 && self.pending.fetch_add(jobs, Ordering::AcqRel) == 0 {
            // The clock starts when work arrives, not at the last progress of an idle spell.
            self.last.store(now_ms(), Ordering::Release);
        }
    }

    /// `jobs` jobs were taken from the queue (or finished, for a worker).
    pub fn taken(&self, jobs: usize) {
        self.last.store(now_ms(), Ordering::Release);
        let _ = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some(p.saturating_sub(jobs)));
    }

    /// The work in hand moved (a chunk of a large batch finished): progress, nothing done yet.
    pub fn advanced(&self) {
        self.last.store(now_ms(), Ordering::Release);
    }

    /// How long work has waited without progress, when it has waited at least `threshold`.
    pub fn stalled(&self, threshold: Duration) -> Option<Duration> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = Duration::from_millis(now_ms().saturating_sub(self.last.load(Ordering::Acquire)));
        (since >= threshold).then_some(since)
    }
}

/// A new [`Progress`] named `name`, watched for as long as its owner keeps it.
pub fn track(name: impl Into<String>) -> Arc<Progress> {
    let progress = Arc::new(Progress { name: name.into(), ..Progress::default() });
    let mut tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    tracked.retain(|w| w.strong_count() > 0);
    tracked.push(Arc::downgrade(&progress));
    progress
}

/// The longest stall (at least `threshold`) of anything watched, and what stalled.
pub fn stalled(threshold: Duration) -> Option<(String, Duration)> {
    let tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    tracked
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|p| p.stalled(threshold).map(|d| (p.name.clone(), d)))
        .max_by_key(|(_, d)| *d)
}

/// The liveness answer for a stall threshold.
pub fn liveness(threshold: Duration) -> (StatusCode, String) {
    match stalled(threshold) {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some((what, d)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stalled: {what}: work waiting and no progress for {:.0} s\n", d.as_secs_f64()),
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

    /// Liveness is process-wide: tests that make something stall must not overlap the ones
    /// that assert it is alive.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().await
    }

    /// Polls liveness until it fails (bounded): its body.
    async fn until_failing(threshold: Duration, what: &str) -> String {
        let started = Instant::now();
        loop {
            let (status, body) = liveness(threshold);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                return body;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{what} never failed liveness");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Real batchers on the bundled model: one whose workers keep up with a queue that never
    /// empties (busy: alive throughout), then one with no worker left (stalled: liveness fails,
    /// and recovers when that batcher goes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn liveness_fails_on_a_stalled_batcher_and_never_on_a_busy_one() {
        let _one = one_at_a_time().await;
        // Far above one batch of 4 segments even on a loaded machine: a busy worker's batches
        // must never look like a stall.
        let threshold = Duration::from_millis(1500);
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
        let body = until_failing(threshold, "a stalled batcher").await;
        assert!(body.contains("stalled: inference queue stalled"), "{body}");
        // The version goes (its caller gives up, the batcher is dropped): alive again.
        waiting.abort();
        let _ = waiting.await;
        drop(stalled_batcher);
        assert_eq!(liveness(threshold).0, StatusCode::OK, "liveness did not recover when the stalled batcher went");
    }

    /// The feature/decode pool: busy with short jobs for several thresholds, alive throughout;
    /// then with its only thread frozen in a job and work queued behind it, liveness fails
    /// naming the pool, and recovers when the thread is released.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn liveness_fails_on_a_frozen_feature_pool_and_never_on_a_busy_one() {
        let _one = one_at_a_time().await;
        let threshold = Duration::from_millis(1500);
        let pool = crate::pipeline::FeaturePool::new(1, Arc::new(Metrics::new())).unwrap();

        // Busy: 4 callers keep the single thread's queue full with 20 ms jobs.
        let until = Instant::now() + threshold * 3;
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut done = 0usize;
                    while Instant::now() < until {
                        pool.run(|| {
                            std::thread::sleep(Duration::from_millis(20));
                            Ok(())
                        })
                        .await
                        .unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        while Instant::now() < until {
            let (status, body) = liveness(threshold);
            assert_eq!(status, StatusCode::OK, "a busy feature pool failed liveness: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut jobs = 0;
        for c in callers {
            jobs += c.await.unwrap();
        }
        assert!(jobs > 20, "{jobs} jobs: the load did not run");

        // Frozen: the thread blocks in a job (a wedged decoder); a request waits behind it.
        let (release, frozen) = std::sync::mpsc::channel::<()>();
        let wedged = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = frozen.recv();
                    Ok(())
                })
                .await
            })
        };
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| Ok(())).await })
        };
        tokio::time::sleep(threshold / 4).await;
        assert_eq!(liveness(threshold).0, StatusCode::OK, "failed before the threshold");
        let body = until_failing(threshold, "a frozen feature pool").await;
        assert!(body.contains("feature"), "{body}");
        // Released: the work moves, alive again.
        release.send(()).unwrap();
        wedged.await.unwrap().unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(liveness(threshold).0, StatusCode::OK, "liveness did not recover when the pool moved");
    }

    /// Two inference workers of one version: one keeps finishing batches (the queue moves),
    /// the other holds a batch and never finishes it (a wedged ONNX Runtime call). Liveness
    /// fails naming the wedged worker, although the queue is not stalled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn liveness_fails_on_one_wedged_inference_worker_of_two() {
        let _one = one_at_a_time().await;
        let threshold = Duration::from_millis(400);
        let queue = track("inference queue m/1");
        let (good, wedged) = (track("inference worker m/1-0"), track("inference worker m/1-1"));
        wedged.enqueued_many(2);
        let started = Instant::now();
        let body = loop {
            // The good worker: a batch queued, taken, finished, over and over.
            queue.enqueued();
            queue.taken(1);
            good.enqueued_many(1);
            good.advanced();
            good.taken(1);
            assert!(queue.stalled(Duration::ZERO).is_none() && good.stalled(Duration::ZERO).is_none());
            let (status, body) = liveness(threshold);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break body;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "a wedged worker never failed liveness");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(started.elapsed() >= threshold, "failed before the threshold");
        assert!(body.contains("inference worker m/1-1"), "{body}");
        wedged.taken(2);
        assert_eq!(liveness(threshold).0, StatusCode::OK);
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
