//! The memory budget: one number (`limits.memory_budget_mb`) bounding the request audio held at
//! once, in every form it takes (body bytes as they arrive, decoded samples at the input rate,
//! resampled samples, features). Work asks for bytes before it holds them and gets
//! RESOURCE_EXHAUSTED (`memory_budget_exhausted`) when they are not free, so traffic the server
//! accepted cannot push it past its pod's memory limit. A `Reservation` grows and shrinks with
//! the work and gives everything back when dropped.
//!
//! Giving bytes back to the budget frees them in the allocator, not always in the process:
//! small buffers (HTTP body chunks, below the mmap threshold) are freed into glibc's per-thread
//! arenas and stay resident. So RSS follows the budget down, the budget trims the allocator
//! (`malloc_trim`, on a thread of its own) after large releases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bytes given back since the last trim that call for another.
const TRIM_AFTER_BYTES: u64 = 32 << 20;
/// How often the trimmer looks.
const TRIM_EVERY: Duration = Duration::from_millis(500);

use vericlip_core::AudioError;

use crate::metrics::Metrics;

pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    /// Given back since the allocator was last trimmed.
    released: AtomicU64,
    metrics: Arc<Metrics>,
}

impl MemoryBudget {
    pub fn new(limit: u64, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.memory_budget_bytes.set(i64::try_from(limit).unwrap_or(i64::MAX));
        Arc::new(Self { limit, used: AtomicU64::new(0), released: AtomicU64::new(0), metrics })
    }

    /// Starts the thread that returns freed memory to the system after large releases; it ends
    /// with the last reference to the budget.
    pub fn spawn_trimmer(self: &Arc<Self>) -> std::io::Result<()> {
        let weak = Arc::downgrade(self);
        std::thread::Builder::new().name("budget-trim".into()).spawn(move || {
            while let Some(budget) = weak.upgrade() {
                if budget.released.load(Ordering::Relaxed) >= TRIM_AFTER_BYTES {
                    budget.released.store(0, Ordering::Relaxed);
                    drop(budget);
                    trim_allocator();
                } else {
                    drop(budget);
                }
                std::thread::sleep(TRIM_EVERY);
            }
        })?;
        Ok(())
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// An empty reservation to grow.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation { budget: Arc::clone(self), held: 0 }
    }

    fn take(&self, bytes: u64) -> Result<(), AudioError> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.limit {
                self.metrics.budget_refusals.inc();
                return Err(AudioError::OverBudget {
                    needed_bytes: bytes,
                    free_bytes: self.limit.saturating_sub(used),
                    budget_bytes: self.limit,
                });
            }
            match self.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        self.metrics.memory_budget_used.set(i64::try_from(used + bytes).unwrap_or(i64::MAX));
        Ok(())
    }

    fn give(&self, bytes: u64) {
        self.released.fetch_add(bytes, Ordering::Relaxed);
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.metrics.memory_budget_used.set(i64::try_from(before - bytes).unwrap_or(i64::MAX));
    }
}

/// Returns the allocator's free pages to the system (all arenas, not only the top of the heap).
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes held from the budget by one piece of work.
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    held: u64,
}

impl Reservation {
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Holds `total` bytes in all: grows (or fails, holding what it held) or shrinks.
    pub fn set(&mut self, total: u64) -> Result<(), AudioError> {
        if total > self.held {
            self.budget.take(total - self.held)?;
        } else if total < self.held {
            self.budget.give(self.held - total);
        }
        self.held = total;
        Ok(())
    }

    /// Holds at least `total` bytes.
    pub fn ensure(&mut self, total: u64) -> Result<(), AudioError> {
        if total > self.held { self.set(total) } else { Ok(()) }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.give(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_limit_and_give_back_on_drop() {
        let budget = MemoryBudget::new(1000, Arc::new(Metrics::new()));
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        a.ensure(600).unwrap();
        let e = b.ensure(500).unwrap_err();
        assert!(
            matches!(e, AudioError::OverBudget { needed_bytes: 500, free_bytes: 400, budget_bytes: 1000 }),
            "{e:?}"
        );
        assert_eq!(b.held(), 0);
        b.ensure(400).unwrap();
        assert_eq!(budget.used(), 1000);
        a.set(100).unwrap();
        assert_eq!(budget.used(), 500);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
