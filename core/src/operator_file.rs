//! The one way to read a file an operator manages (TLS certificate, key and CA bundle, API keys,
//! a model's serving state, a version's manifest and model): at start and on every reload alike.
//!
//! Such a file is whatever a mount, a Secret update or a clumsy `ln -s` made it, so it is read
//! defensively:
//! - regular files only: the path is looked at first (`stat`, following symlinks) and the opened
//!   file again (`fstat`: it may have been swapped in between), and the open itself is
//!   non-blocking, so a FIFO, a device (`/dev/zero`), a socket or a directory is refused at once
//!   instead of blocking forever or streaming without end;
//! - a size limit per kind of file ([`FileKind`]), checked before the buffer is allocated and
//!   again while reading (the file may grow);
//! - a deadline: the read runs on a short-lived thread of its own and the caller waits at most
//!   the kind's deadline (a hung network volume blocks that thread, never the caller); while
//!   [`MAX_IN_FLIGHT`] reads are still stuck, further reads are refused at once rather than
//!   piling up threads.
//!
//! A refusal is an [`OperatorFileError`] naming the path and the reason. Callers that re-read a
//! file while they run keep a [`RefusalLog`]: it logs a refusal at WARN once per change of the
//! file (deleted included), not on every poll.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use thiserror::Error;

/// How long a small operator file may take to read: far above any local or healthy network
/// read of a few KB, far below a probe's patience.
const SMALL_FILE_DEADLINE: Duration = Duration::from_secs(10);
/// A model file (up to 2 GiB) on a slow volume.
const MODEL_DEADLINE: Duration = Duration::from_secs(300);
/// Reads in flight (a few concurrent readers in practice: the TLS and API-key reloads, the
/// registry watcher); past this many, reads are stuck on a hung volume and new ones are refused.
pub const MAX_IN_FLIGHT: usize = 16;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// What kind of operator file is read: what it is called in messages, its size limit and how
/// long its read may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    pub what: &'static str,
    pub max_bytes: u64,
    pub deadline: Duration,
}

impl FileKind {
    /// A PEM certificate chain (`tls.cert_file`): a few KB in practice.
    pub const CERTIFICATE: FileKind = FileKind::small("certificate", 1 << 20);
    /// A PEM private key (`tls.key_file`).
    pub const PRIVATE_KEY: FileKind = FileKind::small("private key", 1 << 20);
    /// A PEM CA bundle (`tls.client_ca_file`).
    pub const CA_BUNDLE: FileKind = FileKind::small("CA bundle", 1 << 20);
    /// API keys, one per line (`auth.api_key_file`): 4 MiB is tens of thousands of keys.
    pub const API_KEYS: FileKind = FileKind::small("API-key file", 4 << 20);
    /// A model's `serving.json`.
    pub const SERVING_STATE: FileKind = FileKind::small("serving state", crate::registry::serving::MAX_SERVING_BYTES);
    /// A model's append-only serving history (`model history`): up to tens of MB, so the long
    /// deadline.
    pub const SERVING_HISTORY: FileKind = FileKind {
        what: "serving history",
        max_bytes: crate::registry::serving::MAX_HISTORY_BYTES,
        deadline: MODEL_DEADLINE,
    };
    /// A version's `manifest.json`.
    pub const MANIFEST: FileKind = FileKind::small("manifest", crate::registry::MAX_MANIFEST_BYTES);
    /// A version's `model.onnx`.
    pub const MODEL: FileKind =
        FileKind { what: "model", max_bytes: crate::registry::MAX_MODEL_BYTES, deadline: MODEL_DEADLINE };

    const fn small(what: &'static str, max_bytes: u64) -> FileKind {
        FileKind { what, max_bytes, deadline: SMALL_FILE_DEADLINE }
    }
}

/// Why an operator file was not read.
#[derive(Debug, Error)]
pub enum Refusal {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("not a regular file ({0}); only regular files are read")]
    NotRegular(&'static str),
    #[error("{size} bytes, over the {limit}-byte limit for a {what}")]
    TooLarge { size: u64, limit: u64, what: &'static str },
    #[error("not read within {} s (a hung volume?)", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("{0} earlier reads of operator files are still stuck (a hung volume?); not reading now")]
    Stuck(usize),
}

/// A refused read: the path, the reason, and the file's identity when it could be seen (what
/// "the file changed" means for [`RefusalLog`]).
#[derive(Debug, Error)]
#[error("{}: {reason}", .path.display())]
pub struct OperatorFileError {
    pub path: PathBuf,
    pub reason: Refusal,
    identity: Option<Identity>,
}

impl OperatorFileError {
    /// True when the file is not there (deleted, or a dangling symlink such as a Secret's
    /// `..data` link mid-update).
    pub fn not_found(&self) -> bool {
        matches!(&self.reason, Refusal::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Device, inode, size and modification time of what a path resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Identity {
    fn of(meta: &fs::Metadata) -> Self {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// Reads the whole file at `path` as a `kind` (see the module's comment for the checks).
pub fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, OperatorFileError> {
    let refused = |reason| OperatorFileError { path: path.to_path_buf(), reason, identity: None };
    let in_flight = IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    if in_flight >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err(refused(Refusal::Stuck(in_flight)));
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let owned = path.to_path_buf();
    let spawned = std::thread::Builder::new().name("operator-file".into()).spawn(move || {
        let result = read_now(&owned, kind);
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err(refused(Refusal::Io(e)));
    }
    match rx.recv_timeout(kind.deadline) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(refused(Refusal::TimedOut(kind.deadline))),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(refused(Refusal::Io(std::io::Error::other("the reading thread ended without an answer"))))
        }
    }
}

/// What a non-regular file is, for the refusal.
fn not_regular(file_type: fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_dir() {
        Some("a directory")
    } else {
        Some("not a file")
    }
}

fn read_now(path: &Path, kind: FileKind) -> Result<Vec<u8>, OperatorFileError> {
    let fail = |reason, identity| OperatorFileError { path: path.to_path_buf(), reason, identity };
    let check = |meta: &fs::Metadata| {
        let identity = Some(Identity::of(meta));
        if let Some(what) = not_regular(meta.file_type()) {
            return Err(fail(Refusal::NotRegular(what), identity));
        }
        if meta.len() > kind.max_bytes {
            return Err(fail(Refusal::TooLarge { size: meta.len(), limit: kind.max_bytes, what: kind.what }, identity));
        }
        Ok(identity)
    };
    check(&fs::metadata(path).map_err(|e| fail(Refusal::Io(e), None))?)?;
    // Non-blocking: had the path become a FIFO since the look above, the open would wait for a
    // writer. On a regular file the flag changes nothing.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(Refusal::Io(e), None))?;
    let meta = file.metadata().map_err(|e| fail(Refusal::Io(e), None))?;
    let identity = check(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(kind.max_bytes + 1).read_to_end(&mut bytes).map_err(|e| fail(Refusal::Io(e), identity))?;
    if bytes.len() as u64 > kind.max_bytes {
        let size = bytes.len() as u64;
        return Err(fail(Refusal::TooLarge { size, limit: kind.max_bytes, what: kind.what }, identity));
    }
    Ok(bytes)
}

/// Remembers the last refusal per path, so that a file that stays bad is reported once per
/// change (its identity or the reason), not on every re-read.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: HashMap<PathBuf, (String, Option<Identity>)>,
}

impl RefusalLog {
    /// Logs `error` at WARN (with `what` the file is for, its path and the reason) unless it is
    /// the same refusal of the same file as last time; true when it logged.
    pub fn refused(&mut self, what: &str, error: &OperatorFileError) -> bool {
        let seen = (error.reason.to_string(), error.identity);
        if self.last.get(&error.path) == Some(&seen) {
            return false;
        }
        tracing::warn!(
            what,
            path = %error.path.display(),
            reason = %seen.0,
            "operator file refused; keeping the last good one"
        );
        self.last.insert(error.path.clone(), seen);
        true
    }

    /// `path` was read: a later refusal is news again.
    pub fn accepted(&mut self, path: &Path) {
        self.last.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vericlip-operator-file-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
    }

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = scratch("regular");
        let file = dir.join("tls.crt");
        fs::write(&file, b"pem").unwrap();
        assert_eq!(read(&file, FileKind::CERTIFICATE).unwrap(), b"pem");
        // Through a symlink (a Secret mount's `..data` links) too.
        let link = dir.join("link.crt");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, FileKind::CERTIFICATE).unwrap(), b"pem");
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = scratch("special");
        let fifo = dir.join("fifo");
        mkfifo(&fifo);
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (path, what) in [(&fifo, "a FIFO"), (&zero, "a character device"), (&dir, "a directory")] {
            let e = read(path, FileKind::SERVING_STATE).unwrap_err();
            assert!(matches!(e.reason, Refusal::NotRegular(w) if w == what), "{}: {e}", path.display());
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
    }

    #[test]
    fn files_over_their_kind_limit_are_refused_and_missing_ones_say_so() {
        let dir = scratch("size");
        let keys = dir.join("keys");
        fs::write(&keys, vec![b'k'; (4 << 20) + 1]).unwrap();
        let e = read(&keys, FileKind::API_KEYS).unwrap_err();
        assert!(matches!(e.reason, Refusal::TooLarge { limit, .. } if limit == 4 << 20), "{e}");
        fs::write(&keys, vec![b'k'; 4 << 20]).unwrap();
        assert_eq!(read(&keys, FileKind::API_KEYS).unwrap().len(), 4 << 20);
        let gone = read(&dir.join("missing"), FileKind::CERTIFICATE).unwrap_err();
        assert!(gone.not_found(), "{gone}");
        let dangling = dir.join("..data");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        assert!(read(&dangling, FileKind::CERTIFICATE).unwrap_err().not_found());
    }

    #[test]
    fn a_refusal_is_logged_once_per_change_of_the_file() {
        let dir = scratch("log");
        let path = dir.join("tls.key");
        mkfifo(&path);
        let mut log = RefusalLog::default();
        let refuse = |log: &mut RefusalLog| log.refused("tls", &read(&path, FileKind::PRIVATE_KEY).unwrap_err());
        assert!(refuse(&mut log), "the first refusal is logged");
        assert!(!refuse(&mut log), "the same file, the same reason: not again");
        // Replaced by another FIFO: a change of the file, logged again.
        fs::remove_file(&path).unwrap();
        mkfifo(&path);
        assert!(refuse(&mut log));
        // Deleted: logged.
        fs::remove_file(&path).unwrap();
        assert!(refuse(&mut log));
        assert!(!refuse(&mut log));
        // Good again, then bad again: news.
        fs::write(&path, b"key").unwrap();
        assert_eq!(read(&path, FileKind::PRIVATE_KEY).unwrap(), b"key");
        log.accepted(&path);
        fs::remove_file(&path).unwrap();
        assert!(refuse(&mut log));
    }
}
