//! Files the server re-reads while it runs (TLS certificate and key, API keys): polled by
//! content, because Kubernetes updates a mounted Secret by swapping a symlink (`..data`), which
//! file events and mtimes on the visible names do not reliably show, and cert-manager renews
//! certificates that way. A change is applied only when the new contents parse; a bad file is
//! logged once and the previous value kept, so a half-written or wrong file never takes a
//! running server's TLS or keys away.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use sha2::{Digest, Sha256};
use vericlip_core::operator_file::{self, FileKind, OperatorFileError, RefusalLog};

/// How often the files are re-read: a few small reads, and a rotation is live within seconds.
pub const POLL: Duration = Duration::from_secs(2);

/// One watched file and what kind of operator file it is (its size limit).
pub type Watched = (PathBuf, FileKind);

/// The contents of `files`, read together through the operator-file reader (regular files
/// only, bounded, never blocking), and their digest (what a change is detected by).
pub fn read_all(files: &[Watched]) -> Result<(Vec<Vec<u8>>, [u8; 32]), OperatorFileError> {
    let mut hasher = Sha256::new();
    let mut contents = Vec::with_capacity(files.len());
    for (path, kind) in files {
        let bytes = operator_file::read(path, *kind)?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        contents.push(bytes);
    }
    Ok((contents, hasher.finalize().into()))
}

/// Re-reads `files` every [`POLL`] on a thread of its own, for as long as `target` lives; when
/// their contents differ from the last ones seen (`loaded`: the digest of what is in use),
/// calls `apply`, which installs the new value or says why not (then the old one stays).
/// `apply` returns a short description of what it installed, for the log. A file the reader
/// refuses (deleted, a dangling `..data` link, a FIFO, a device, too large) is logged at WARN
/// once per change of it, and what is in use stays.
pub fn watch<T, F>(what: &'static str, files: Vec<Watched>, loaded: [u8; 32], target: Weak<T>, apply: F)
where
    T: Send + Sync + 'static,
    F: Fn(&T, &[Vec<u8>]) -> anyhow::Result<String> + Send + 'static,
{
    let spawned = std::thread::Builder::new().name(format!("reload-{what}")).spawn(move || {
        let mut seen = loaded;
        let mut refusals = RefusalLog::default();
        loop {
            std::thread::sleep(POLL);
            let Some(target) = target.upgrade() else { return };
            let (contents, digest) = match read_all(&files) {
                Ok(r) => r,
                Err(e) => {
                    refusals.refused(what, &e);
                    continue;
                }
            };
            for (path, _) in &files {
                refusals.accepted(path);
            }
            if digest == seen {
                continue;
            }
            // Remember it whatever happens: a bad file is reported once, not every poll.
            seen = digest;
            match apply(&target, &contents) {
                Ok(installed) => tracing::info!(what, %installed, "reloaded"),
                Err(e) => tracing::warn!(what, error = format!("{e:#}"), "reload refused: keeping the previous one"),
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(what, error = %e, "cannot start the reload thread: changes need a restart");
    }
}
