//! The feature cache: features of a file are kept on disk under a key of the file's content and
//! the FeatureSpec, so a second run over the same data skips decoding and extraction.

use std::path::{Path, PathBuf};

use vericlip_core::FeatureSpec;
use vericlip_core::registry::sha256_hex;

/// Feature cache keyed by file content and spec.
pub struct FeatureCache {
    dir: Option<PathBuf>,
    spec_key: String,
}

impl FeatureCache {
    pub fn new(dir: Option<PathBuf>, spec: &FeatureSpec) -> anyhow::Result<Self> {
        let spec_key = sha256_hex(&serde_json::to_vec(spec)?)[..16].to_string();
        Ok(Self { dir, spec_key })
    }

    fn path(&self, content: &[u8]) -> Option<PathBuf> {
        let key = sha256_hex(content);
        self.dir.as_ref().map(|d| d.join(&self.spec_key).join(&key[..2]).join(format!("{key}.f32")))
    }

    pub(crate) fn get(&self, content: &[u8], seg_len: usize) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.path(content)?).ok()?;
        if bytes.is_empty() || bytes.len() % (4 * seg_len) != 0 {
            return None;
        }
        Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    pub(crate) fn put(&self, content: &[u8], features: &[f32]) {
        let Some(path) = self.path(content) else { return };
        let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Write-then-rename so a crash never leaves a truncated entry; failures only cost speed.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let ok = path.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok())
            && std::fs::write(&tmp, bytes).is_ok()
            && std::fs::rename(&tmp, &path).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Where features are cached unless `--cache` says otherwise.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|c| c.join("vericlip").join("features"))
}
