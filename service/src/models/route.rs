//! Which side of a canary a request lands on. A caller that sends a routing key (gRPC metadata
//! or HTTP header `x-vericlip-routing-key`, also on the WebSocket upgrade request) always lands
//! on the same side, on every replica and after every restart: the key's SHA-256, not a
//! per-process hasher, places it in [0, 1). Without a key the place is random per request. A
//! request (or stream: it picks once) that names a version, or a config pin, is not routed.

use std::sync::atomic::{AtomicU64, Ordering};

/// The header / metadata key that carries the routing key.
pub const ROUTING_KEY_HEADER: &str = "x-vericlip-routing-key";

/// A request's place in [0, 1) as a fixed-point fraction of 2^64: it takes the canary when
/// below the canary's fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(u64);

impl Route {
    /// A place no canary takes: what a lookup of "the served version" (GetModel) sees.
    pub const STABLE: Route = Route(u64::MAX);

    /// The place of a routing key (deterministic: the same key, the same place everywhere).
    pub fn keyed(key: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(key);
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        Route(u64::from_be_bytes(head))
    }

    /// A random place (no key): splitmix64 over a process-wide counter seeded from the clock
    /// and the process id, enough to split traffic evenly (nothing secret depends on it).
    pub fn random() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            (now as u64) ^ u64::from(std::process::id()).rotate_left(32)
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Route(z ^ (z >> 31))
    }

    /// From a routing key if one is given (empty or over 1 KiB counts as none), else random.
    pub fn from_key(key: Option<&[u8]>) -> Self {
        match key {
            Some(k) if !k.is_empty() && k.len() <= 1024 => Self::keyed(k),
            _ => Self::random(),
        }
    }

    /// From HTTP headers (the HTTP API and the WebSocket upgrade request).
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        Self::from_key(headers.get(ROUTING_KEY_HEADER).map(http::HeaderValue::as_bytes))
    }

    /// Whether this place falls in a canary taking `fraction` (0..1) of the traffic.
    pub fn takes_canary(self, fraction: f64) -> bool {
        // `fraction` is in (0, 1) (checked when the serving state is read): the product fits.
        (self.0 as f64) < fraction * 18_446_744_073_709_551_616.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_split_by_fraction() {
        // Fixed: a replica, a restart and another build place a key the same way.
        assert_eq!(Route::keyed(b"caller-1"), Route::keyed(b"caller-1"));
        let mut headers = http::HeaderMap::new();
        headers.insert(ROUTING_KEY_HEADER, http::HeaderValue::from_static("caller-1"));
        assert_eq!(Route::from_headers(&headers), Route::keyed(b"caller-1"));
        let keyed = (0..10_000).filter(|i| Route::keyed(format!("k{i}").as_bytes()).takes_canary(0.1)).count();
        assert!((800..1200).contains(&keyed), "{keyed} of 10000 keys in a 10 % canary");
        let random = (0..10_000).filter(|_| Route::random().takes_canary(0.1)).count();
        assert!((800..1200).contains(&random), "{random} of 10000 random requests in a 10 % canary");
        assert!(!Route(u64::MAX).takes_canary(0.999_999));
        assert!(Route(0).takes_canary(1e-9));
    }
}
