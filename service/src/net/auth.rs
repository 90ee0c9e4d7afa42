//! API keys (`auth.api_key_file`): API calls carry `authorization: Bearer <key>` (gRPC metadata
//! or HTTP header). Keys are kept as SHA-256 digests and every presented key is compared with
//! every stored one in constant time, so neither a key's content nor its length leaks through
//! timing. The file is re-read when it changes (`file_watch`: a Secret update reaches running
//! pods without a restart); a file without a key is refused and the keys in use kept.
//! Open without a key: gRPC health; on the HTTP port everything outside `/v1/` (the probes,
//! `/metrics`, the page and its assets, `/model-card`). The `api_key` query parameter is taken
//! only on the WebSocket upgrade `GET /v1/stream`, because a browser cannot set headers there;
//! anywhere else it is refused (a key in a URL ends up in logs and histories).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use vericlip_core::operator_file::FileKind;

use super::file_watch;
use crate::error::{ErrorClass, ServiceError};

/// The one HTTP route that takes the key as a query parameter (`?api_key=`).
pub const QUERY_KEY_ROUTE: &str = "/v1/stream";

pub struct ApiKeys {
    digests: ArcSwap<Vec<[u8; 32]>>,
    path: String,
}

impl ApiKeys {
    /// Keys from `path`, one per line (blank lines and `#` comments ignored); `None` when the
    /// path is empty (auth off). Read once; [`ApiKeys::load_watched`] also follows changes.
    pub fn load(path: &str) -> anyhow::Result<Option<Arc<Self>>> {
        Ok(Self::read(path)?.map(|(keys, _)| keys))
    }

    /// As [`ApiKeys::load`], then re-reads the file when it changes, for as long as the keys
    /// are in use.
    pub fn load_watched(path: &str) -> anyhow::Result<Option<Arc<Self>>> {
        let Some((keys, digest)) = Self::read(path)? else { return Ok(None) };
        file_watch::watch(
            "api_keys",
            vec![(PathBuf::from(path), FileKind::API_KEYS)],
            digest,
            Arc::downgrade(&keys),
            |keys: &Self, c| {
                let [text] = c else { anyhow::bail!("expected one file") };
                let digests = parse(&keys.path, text)?;
                let described = format!("{} keys", digests.len());
                keys.digests.store(Arc::new(digests));
                Ok(described)
            },
        );
        Ok(Some(keys))
    }

    fn read(path: &str) -> anyhow::Result<Option<(Arc<Self>, [u8; 32])>> {
        if path.is_empty() {
            return Ok(None);
        }
        let (contents, digest) = file_watch::read_all(&[(PathBuf::from(path), FileKind::API_KEYS)])
            .with_context(|| format!("auth.api_key_file {path}"))?;
        let digests = parse(path, &contents[0])?;
        Ok(Some((Arc::new(Self { digests: ArcSwap::from_pointee(digests), path: path.to_string() }), digest)))
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
        for stored in self.digests.load().iter() {
            let diff = stored.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= u8::from(diff == 0);
        }
        !presented.is_empty() && matched == 1
    }

    /// The key an HTTP request presents: its `authorization` header, or on
    /// [`QUERY_KEY_ROUTE`] (browsers' WebSockets cannot set headers) its `api_key` query
    /// parameter. Refused (an error saying why) when `api_key` is in the query of any other route.
    pub fn http_key<B>(request: &http::Request<B>) -> Result<Option<http::HeaderValue>, ServiceError> {
        let query_key = request.uri().query().and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == "api_key").then_some(v)
            })
        });
        if query_key.is_some() && request.uri().path() != QUERY_KEY_ROUTE {
            return Err(ServiceError::Relayed {
                name: "unauthenticated",
                class: ErrorClass::Unauthenticated,
                message: format!(
                    "the api_key query parameter is accepted only on {QUERY_KEY_ROUTE} (WebSocket); \
                     send `authorization: Bearer <key>` instead"
                ),
            });
        }
        if let Some(h) = request.headers().get(http::header::AUTHORIZATION) {
            return Ok(Some(h.clone()));
        }
        let Some(raw) = query_key else { return Ok(None) };
        let key = percent_decode(raw);
        Ok(http::HeaderValue::from_str(&format!("Bearer {key}")).ok())
    }
}

/// `%XX` and `+` decoding of one query value (keys are usually plain; a browser encodes
/// anything else).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The keys in a key file's text; an error (naming the file) when there is none.
fn parse(path: &str, text: &[u8]) -> anyhow::Result<Vec<[u8; 32]>> {
    let text = std::str::from_utf8(text).with_context(|| format!("auth.api_key_file {path}: not UTF-8 text"))?;
    let digests: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|k| Sha256::digest(k.as_bytes()).into())
        .collect();
    anyhow::ensure!(!digests.is_empty(), "auth.api_key_file {path}: no key in it");
    Ok(digests)
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

    #[test]
    fn query_key_only_on_the_websocket_route() {
        let req = |uri: &str, auth: Option<&str>| {
            let mut b = http::Request::builder().uri(uri);
            if let Some(a) = auth {
                b = b.header(http::header::AUTHORIZATION, a);
            }
            b.body(()).unwrap()
        };
        let key = |r: &http::Request<()>| ApiKeys::http_key(r).map(|k| k.map(|v| v.to_str().unwrap().to_string()));
        assert_eq!(key(&req("/v1/stream?api_key=a%2Bb+c", None)).unwrap().as_deref(), Some("Bearer a+b c"));
        assert_eq!(key(&req("/v1/stream?x=1&api_key=k", None)).unwrap().as_deref(), Some("Bearer k"));
        assert_eq!(key(&req("/v1/stream", Some("Bearer h"))).unwrap().as_deref(), Some("Bearer h"));
        assert_eq!(key(&req("/v1/classify", Some("Bearer h"))).unwrap().as_deref(), Some("Bearer h"));
        assert_eq!(key(&req("/v1/classify", None)).unwrap(), None);
        for uri in ["/v1/classify?api_key=k", "/v1/models?model=x&api_key=", "/v1/classify?api_key"] {
            let e = key(&req(uri, Some("Bearer h"))).unwrap_err();
            assert_eq!(e.name(), "unauthenticated", "{uri}");
            assert_eq!(crate::http::error::status(e.class()), 401, "{uri}");
            assert!(e.to_string().contains("only on /v1/stream"), "{uri}: {e}");
        }
        // A malformed escape is kept as typed, never a panic (even before a multi-byte char).
        assert_eq!(key(&req("/v1/stream?api_key=%zz%", None)).unwrap().as_deref(), Some("Bearer %zz%"));
    }

    #[test]
    fn a_watched_key_file_follows_changes_and_keeps_keys_when_emptied() {
        let dir = std::env::temp_dir().join(format!("vericlip-keys-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "old-key\n").unwrap();
        let keys = ApiKeys::load_watched(file.to_str().unwrap()).unwrap().unwrap();
        let h = |s: &str| http::HeaderValue::from_str(&format!("Bearer {s}")).unwrap();
        assert!(keys.allows(Some(&h("old-key"))));
        let wait_until = |want: &dyn Fn() -> bool| {
            let started = std::time::Instant::now();
            while !want() {
                assert!(started.elapsed() < std::time::Duration::from_secs(30), "the key file change was not applied");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        };
        std::fs::write(&file, "new-key\n").unwrap();
        wait_until(&|| keys.allows(Some(&h("new-key"))));
        assert!(!keys.allows(Some(&h("old-key"))));
        // An emptied file (a bad update) is refused: the keys in use stay.
        std::fs::write(&file, "# nothing\n").unwrap();
        std::thread::sleep(file_watch::POLL * 3);
        assert!(keys.allows(Some(&h("new-key"))));
        std::fs::write(&file, "third-key\n").unwrap();
        wait_until(&|| keys.allows(Some(&h("third-key"))));
    }
}
