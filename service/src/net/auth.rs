//! API keys (`auth.api_key_file`): API calls carry `authorization: Bearer <key>` (gRPC metadata
//! or HTTP header). Keys are kept as SHA-256 digests and every presented key is compared with
//! every stored one in constant time, so neither a key's content nor its length leaks through
//! timing. gRPC health stays open for probes; so do `/healthz`, `/readyz` and `/metrics`.

use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Keys from `path`, one per line (blank lines and `#` comments ignored); `None` when the
    /// path is empty (auth off).
    pub fn load(path: &str) -> anyhow::Result<Option<Arc<Self>>> {
        if path.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(Path::new(path)).with_context(|| format!("auth.api_key_file {path}"))?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        anyhow::ensure!(!digests.is_empty(), "auth.api_key_file {path}: no key in it");
        Ok(Some(Arc::new(Self { digests })))
    }

    /// Whether an `authorization` header value carries a known key.
    pub fn allows(&self, authorization: Option<&http::HeaderValue>) -> bool {
        let presented = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or("");
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched = 0u8;
        for stored in &self.digests {
            let diff = stored.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= u8::from(diff == 0);
        }
        !presented.is_empty() && matched == 1
    }
}

/// gRPC paths that need no key: health checking (kubelet, load balancers).
fn open_grpc_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// A tower layer for the gRPC server: calls without a valid key are answered UNAUTHENTICATED
/// before they reach a service.
#[derive(Clone)]
pub struct GrpcAuthLayer {
    pub keys: Option<Arc<ApiKeys>>,
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { inner, keys: self.keys.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    keys: Option<Arc<ApiKeys>>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(keys) = &self.keys
            && !open_grpc_path(request.uri().path())
            && !keys.allows(request.headers().get(http::header::AUTHORIZATION))
        {
            let response = tonic::Status::from(ServiceError::Unauthenticated).into_http();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_keys_pass() {
        let dir = std::env::temp_dir().join(format!("vericlip-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# ops\nalpha-key\n\n  beta-key  \n").unwrap();
        let keys = ApiKeys::load(file.to_str().unwrap()).unwrap().unwrap();
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert!(keys.allows(Some(&h("Bearer alpha-key"))));
        assert!(keys.allows(Some(&h("Bearer beta-key"))));
        assert!(!keys.allows(Some(&h("Bearer alpha-ke"))));
        assert!(!keys.allows(Some(&h("alpha-key"))));
        assert!(!keys.allows(Some(&h("Bearer "))));
        assert!(!keys.allows(None));
        std::fs::write(&file, "# none\n").unwrap();
        assert!(ApiKeys::load(file.to_str().unwrap()).is_err());
        assert!(ApiKeys::load("").unwrap().is_none());
    }
}
