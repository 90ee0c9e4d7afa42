//! Dynamic batching: segments from every request and stream on one model version wait in one
//! queue; each inference worker (one ONNX Runtime session, since `Session::run` takes `&mut self`)
//! takes up to `max_batch` segments, waiting at most `max_delay` after the first one for more,
//! runs them in one call and scatters the scores back. Jobs whose deadline has passed, or whose
//! caller has gone, are dropped before inference.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ndarray::ArrayView3;
use tokio::sync::oneshot;
use vericlip_core::runtime::ModelSession;

use crate::error::ServiceError;
use crate::metrics::Metrics;

/// Segments of one request, `[n][frames][features]` flattened, normalized.
pub struct Job {
    pub features: Vec<f32>,
    pub n: usize,
    pub deadline: Option<Instant>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Scored, ServiceError>>,
}

/// Scores of a job's segments and where its time went.
#[derive(Debug, Clone)]
pub struct Scored {
    pub scores: Vec<f32>,
    pub queue: Duration,
    pub inference: Duration,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_batch: usize,
    pub max_delay: Duration,
    pub frames: usize,
    pub n_features: usize,
}

struct Queue {
    jobs: VecDeque<Job>,
    segments: usize,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    config: BatchConfig,
    metrics: Arc<Metrics>,
    /// Liveness: jobs queued, batches taken (`/healthz` fails when work waits and none is taken).
    progress: Arc<super::watchdog::Progress>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked mid-batch leaves a consistent queue behind (jobs are moved out
        // before any work); keep serving rather than poisoning every later request.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queue and inference workers of one loaded model version. Dropping it closes the queue;
/// workers finish what is queued and exit.
pub struct Batcher {
    shared: Arc<Shared>,
}

impl Batcher {
    pub fn start(sessions: Vec<ModelSession>, config: BatchConfig, metrics: Arc<Metrics>, label: &str) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), segments: 0, closed: false }),
            ready: Condvar::new(),
            config,
            metrics,
            progress: super::watchdog::track(format!("inference queue {label}")),
        });
        for (i, session) in sessions.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            // Each worker reports its own progress: one wedged worker of several is seen.
            let mine = super::watchdog::track(format!("inference worker {label}-{i}"));
            let spawned = std::thread::Builder::new()
                .name(format!("infer-{label}-{i}"))
                .spawn(move || worker(&shared, session, &mine));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an inference worker");
            }
        }
        Self { shared }
    }

    /// Queues `n` segments and waits for their scores.
    pub async fn run(&self, features: Vec<f32>, n: usize, deadline: Option<Instant>) -> Result<Scored, ServiceError> {
        let c = &self.shared.config;
        if n == 0 || features.len() != n * c.frames * c.n_features {
            return Err(ServiceError::Internal(format!("batcher got {} floats for {n} segments", features.len())));
        }
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(ServiceError::Unavailable("the model version is being unloaded; retry".into()));
            }
            q.segments += n;
            q.jobs.push_back(Job { features, n, deadline, enqueued: Instant::now(), reply });
            self.shared.progress.enqueued();
        }
        self.shared.ready.notify_one();
        rx.await.map_err(|_| ServiceError::Internal("inference worker stopped".into()))?
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Takes the next batch: blocks for a first job, then gathers until `max_batch` segments or
/// `max_delay` after that job arrived. `None` when closed and drained.
fn next_batch(shared: &Shared, taken: &mut Vec<Job>) -> Option<()> {
    let c = shared.config;
    let mut q = shared.lock();
    loop {
        while q.jobs.is_empty() {
            if q.closed {
                return None;
            }
            q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        let flush_at = q.jobs[0].enqueued + c.max_delay;
        while q.segments < c.max_batch && !q.closed && !q.jobs.is_empty() {
            let now = Instant::now();
            if now >= flush_at {
                break;
            }
            q = shared.ready.wait_timeout(q, flush_at - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        // Another worker may have taken everything while this one waited.
        let mut segments = 0;
        while let Some(job) = q.jobs.front() {
            if !taken.is_empty() && segments + job.n > c.max_batch {
                break;
            }
            segments += job.n;
            q.segments -= job.n;
            taken.extend(q.jobs.pop_front());
        }
        if !taken.is_empty() {
            if !q.jobs.is_empty() {
                shared.ready.notify_one();
            }
            return Some(());
        }
    }
}

fn worker(shared: &Shared, mut session: ModelSession, mine: &super::watchdog::Progress) {
    let c = shared.config;
    let seg = c.frames * c.n_features;
    let mut taken = Vec::new();
    let mut batch: Vec<f32> = Vec::with_capacity(c.max_batch * seg);
    while next_batch(shared, &mut taken).is_some() {
        shared.progress.taken(taken.len());
        let in_hand = taken.len();
        mine.enqueued_many(in_hand);
        let started = Instant::now();
        let mut live = Vec::with_capacity(taken.len());
        for job in taken.drain(..) {
            if job.reply.is_closed() {
                continue;
            }
            if job.deadline.is_some_and(|d| d <= started) {
                shared.metrics.expired_in_queue.inc();
                let _ = job.reply.send(Err(ServiceError::DeadlineExceeded));
                continue;
            }
            live.push(job);
        }
        if live.is_empty() {
            mine.taken(in_hand);
            continue;
        }
        // One job (most batches at low load) runs from its own buffer; several are copied
        // into one contiguous batch.
        let data: &[f32] = if let [job] = live.as_slice() {
            &job.features
        } else {
            batch.clear();
            for job in &live {
                batch.extend_from_slice(&job.features);
            }
            &batch
        };
        let total = data.len() / seg;
        let mut scores = Vec::with_capacity(total);
        let mut failure = None;
        // A single job larger than max_batch still runs, in max_batch chunks.
        for chunk in data.chunks(c.max_batch * seg) {
            let n = chunk.len() / seg;
            shared.metrics.batch_size.observe(n as f64);
            let result = ArrayView3::from_shape((n, c.frames, c.n_features), chunk)
                .map_err(|e| ServiceError::Internal(e.to_string()))
                .and_then(|view| session.run(view).map_err(|e| ServiceError::Internal(e.to_string())));
            mine.advanced();
            match result {
                Ok(s) => scores.extend(s),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let inference = started.elapsed();
        let mut at = 0;
        for job in live {
            let result = match &failure {
                Some(e) => Err(e.clone()),
                None => Ok(Scored {
                    scores: scores[at..at + job.n].to_vec(),
                    queue: started.saturating_duration_since(job.enqueued),
                    inference,
                    batch_size: total,
                }),
            };
            at += job.n;
            let _ = job.reply.send(result);
        }
        mine.taken(in_hand);
        if let Some(e) = failure {
            tracing::error!(error = %e, "inference failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max_batch: usize) -> Shared {
        Shared {
            queue: Mutex::new(Queue { jobs: VecDeque::new(), segments: 0, closed: false }),
            ready: Condvar::new(),
            config: BatchConfig { max_batch, max_delay: Duration::ZERO, frames: 1, n_features: 1 },
            metrics: Arc::new(Metrics::new()),
            progress: Arc::default(),
        }
    }

    fn push(s: &Shared, n: usize) -> oneshot::Receiver<Result<Scored, ServiceError>> {
        let (reply, rx) = oneshot::channel();
        let mut q = s.lock();
        q.segments += n;
        q.jobs.push_back(Job { features: vec![0.0; n], n, deadline: None, enqueued: Instant::now(), reply });
        rx
    }

    #[test]
    fn batches_gather_whole_jobs_up_to_max_batch() {
        let s = shared(4);
        let _rx: Vec<_> = [1, 2, 3, 6].iter().map(|&n| push(&s, n)).collect();
        let mut taken = Vec::new();
        // 1 + 2 fit; the 3-segment job would make 6.
        next_batch(&s, &mut taken).unwrap();
        assert_eq!(taken.iter().map(|j| j.n).collect::<Vec<_>>(), vec![1, 2]);
        taken.clear();
        next_batch(&s, &mut taken).unwrap();
        assert_eq!(taken.iter().map(|j| j.n).collect::<Vec<_>>(), vec![3]);
        taken.clear();
        // A job larger than max_batch still runs, alone (the worker splits it into chunks).
        next_batch(&s, &mut taken).unwrap();
        assert_eq!(taken.iter().map(|j| j.n).collect::<Vec<_>>(), vec![6]);
        assert_eq!(s.lock().segments, 0);
        taken.clear();
        s.lock().closed = true;
        assert!(next_batch(&s, &mut taken).is_none(), "closed and drained");
    }

    /// Real ONNX Runtime on the bundled model, no server: expired and abandoned jobs are dropped
    /// before inference; live ones get their own scores back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_jobs_are_answered_without_inference() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/vericlip-lstm/2");
        let v = vericlip_core::registry::load_version(&dir).unwrap();
        let rt = vericlip_core::runtime::init(None).unwrap();
        let session = ModelSession::from_bytes(rt, &v.model_onnx).unwrap();
        let spec = &v.manifest.feature_spec;
        let (frames, nf) = (spec.frames_per_segment(), spec.n_features());
        let config = BatchConfig { max_batch: 8, max_delay: Duration::from_millis(20), frames, n_features: nf };
        let metrics = Arc::new(Metrics::new());
        let batcher = Batcher::start(vec![session], config, Arc::clone(&metrics), "test");
        let past = Instant::now().checked_sub(Duration::from_millis(1));
        let expired = batcher.run(vec![0.1; frames * nf], 1, past);
        let live = batcher.run(vec![0.1; 2 * frames * nf], 2, None);
        let (expired, live) = tokio::join!(expired, live);
        assert!(matches!(expired, Err(ServiceError::DeadlineExceeded)), "{expired:?}");
        let live = live.unwrap();
        assert_eq!(live.scores.len(), 2);
        assert!(live.scores.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(metrics.expired_in_queue.get(), 1);
        // The wrong amount of features is refused before it is queued.
        assert!(matches!(batcher.run(vec![0.0; 3], 1, None).await, Err(ServiceError::Internal(_))));
    }
}
