//! Writing what the user asked for without ever losing it: atomic writes (temporary file, fsync,
//! rename), a probe of every output path before any work starts, removal of temporaries a killed run
//! left behind, and a rescue location when a save fails mid-run.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory `path` is written into.
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into())
}

/// The temporary file process `pid` writes `path` through: `.NAME.PID.tmp` beside it.
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    dir_of(path).join(format!(".{}.{pid}.tmp", file_name(path)))
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// A crash leaves either the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dir_of(path);
    if !dir.is_dir() {
        return Err(Error::data(
            path,
            "the directory to write into does not exist; create it first",
        ));
    }
    let tmp = temp_path(path, std::process::id());
    let result = (|| {
        fault_point(path)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Test hook for the one failure a test cannot cause from outside while a run is going: with
/// `WGTRAIN_FAIL_WRITES_TO=NAME:N` in the environment, the writes of files named NAME fail from the N-th
/// on (1-based), as a full disk would. Unset (always, outside tests), it costs one lookup.
fn fault_point(path: &Path) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let Ok(spec) = std::env::var("WGTRAIN_FAIL_WRITES_TO") else {
        return Ok(());
    };
    let Some((name, from)) = spec.rsplit_once(':') else {
        return Ok(());
    };
    if file_name(path) != name {
        return Ok(());
    }
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if from.parse::<usize>().is_ok_and(|from| n >= from) {
        return Err(std::io::Error::other(
            "injected write failure (WGTRAIN_FAIL_WRITES_TO)",
        ));
    }
    Ok(())
}

/// Whether process `pid` is running (Linux: /proc; elsewhere unknown, so assumed running).
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Remove the temporaries of `path` that processes no longer running left behind (a run killed
/// mid-write). Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let prefix = format!(".{}.", file_name(path));
    let Ok(entries) = std::fs::read_dir(dir_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !alive(pid) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Check, before any work, that file `path` (given with `flag`) can be written: its directory exists
/// and takes a new file, and it is not a directory. Stale temporaries of it are removed on the way.
pub fn probe_file(path: &Path, flag: &str) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {shown}: is a directory; give a file name"
        )));
    }
    let dir = dir_of(path);
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {shown}: {} is a file, not a directory; choose another path",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {shown}: the directory {} does not exist; create it first or choose another path",
            dir.display()
        )));
    }
    remove_stale_temps(path);
    let tmp = temp_path(path, std::process::id());
    let probe = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(b"probe"));
    let _ = std::fs::remove_file(&tmp);
    probe.map_err(|e| {
        Error::Config(format!(
            "{flag} {shown}: cannot write into {} ({e}); choose a writable location",
            dir.display()
        ))
    })
}

/// [`probe_file`] for an output directory (created if missing, as the command would).
pub fn probe_dir(dir: &Path, flag: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Config(format!(
            "{flag} {}: exists and is not a directory; give a directory to write into",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::Config(format!(
            "{flag} {}: cannot create the directory ({e}); choose a writable location",
            dir.display()
        ))
    })?;
    probe_file(&dir.join(".wgtrain-probe"), flag)
}

/// Where to put a file that could not be written to `path`: beside it under another name, else in the
/// system's temporary directory. `write` is tried at each until one succeeds.
pub fn rescue(
    path: &Path,
    tag: &str,
    mut write: impl FnMut(&Path) -> Result<()>,
) -> Option<PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let name = format!("{stem}.rescue-{tag}{ext}");
    [dir_of(path).join(&name), std::env::temp_dir().join(&name)]
        .into_iter()
        .find(|p| write(p).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_refuse_what_cannot_be_written() {
        let dir = std::env::temp_dir().join(format!("wgtrain-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("a.safetensors");
        probe_file(&ok, "--save").unwrap();
        assert!(!ok.exists(), "the probe leaves nothing behind");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let e = probe_file(&dir.join("missing/a.bin"), "--save").unwrap_err();
        assert!(e.to_string().starts_with("--save "), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = probe_file(&dir, "--report").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        // A regular file where a directory must be: not writable into, as root too.
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(probe_file(&file.join("a.bin"), "--save").is_err());
        assert!(probe_dir(&file, "--log-dir").is_err());
        probe_dir(&dir.join("logs"), "--log-dir").unwrap();
        assert!(dir.join("logs").is_dir());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = std::env::temp_dir().join(format!("wgtrain-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("run.safetensors");
        // Above Linux's PID limit (2^22), so never a live process; and this process's own.
        let dead = dir.join(".run.safetensors.4194999.tmp");
        let mine = temp_path(&target, std::process::id());
        let other = dir.join(".other.safetensors.4194999.tmp");
        for f in [&dead, &mine, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        let expect = usize::from(Path::new("/proc/self").exists());
        assert_eq!(remove_stale_temps(&target), expect);
        assert_eq!(dead.exists(), expect == 0);
        assert!(mine.exists() && other.exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
