//! Fetching Debian packages (`apt-get download`, the package registry this project may use) and
//! unpacking them (`dpkg-deb -x`), cached under the corpus work directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Downloads (once) and unpacks (once) `package`; returns the unpacked root.
pub fn fetch(package: &str, work: &Path) -> anyhow::Result<PathBuf> {
    let debs = work.join("debs");
    let root = work.join("pkgs").join(package);
    if root.join(".unpacked").is_file() {
        return Ok(root);
    }
    std::fs::create_dir_all(&debs)?;
    let find = || -> anyhow::Result<Option<PathBuf>> {
        Ok(std::fs::read_dir(&debs)?.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        }))
    };
    let deb = match find()? {
        Some(d) => d,
        None => {
            tracing::info!(package, "apt-get download");
            if run(Command::new("apt-get").arg("download").arg(package).current_dir(&debs)).is_err() {
                // A fresh machine may have no package lists yet.
                run(Command::new("apt-get").args(["update", "-q"]))?;
                run(Command::new("apt-get").arg("download").arg(package).current_dir(&debs))?;
            }
            find()?.with_context(|| format!("apt-get download {package} left no .deb"))?
        }
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    std::fs::write(root.join(".unpacked"), b"")?;
    Ok(root)
}

/// Unpacks (once) the `folders` of a zip archive inside an unpacked package (game data packs such
/// as Warzone 2100's `base.wz` are zip files) next to the archive; returns the unpacked root.
pub fn unzip(archive: &Path, folders: &[&str]) -> anyhow::Result<PathBuf> {
    let key = vericlip_core::registry::sha256_hex(folders.join("\n").as_bytes());
    let dest = archive.with_extension(format!("unzipped-{}", &key[..12]));
    if dest.join(".unpacked").is_file() {
        return Ok(dest);
    }
    anyhow::ensure!(archive.is_file(), "{} is not in the package", archive.display());
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest)?;
    let mut cmd = Command::new("unzip");
    cmd.args(["-q", "-o"]).arg(archive);
    cmd.args(folders.iter().map(|f| format!("{}/*", f.trim_end_matches('/'))));
    cmd.arg("-d").arg(&dest);
    run(&mut cmd).context("unzip (apt-get install unzip)")?;
    std::fs::write(dest.join(".unpacked"), b"")?;
    Ok(dest)
}

/// Every file under `root` (sorted, so plans are deterministic).
pub fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// The package's copyright file, if it ships one.
pub fn copyright(package: &str, root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join("usr/share/doc").join(package).join("copyright")).ok()
}
