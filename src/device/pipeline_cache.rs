//! A driver pipeline cache kept on disk between runs, where the backend has one (wgpu's
//! `Features::PIPELINE_CACHE`: Vulkan today), so a second run skips the driver's shader compiles.
//!
//! The file is `<dir>/<wgpu's key for the adapter>.bin`, where `<dir>` is `$WGTRAIN_PIPELINE_CACHE`,
//! else `$XDG_CACHE_HOME/wgtrain`, else `$HOME/.cache/wgtrain`; `WGTRAIN_PIPELINE_CACHE=off` turns the
//! cache off. wgpu validates the data against the driver (a stale or corrupt file is ignored, not an
//! error). The cache is written back when the context is dropped and only if a pipeline was created,
//! through a temporary file and a rename, so an interrupted write never leaves a torn file.
//!
//! On lavapipe the Vulkan pipeline cache holds little: llvmpipe compiles a shader when it is first
//! dispatched, and Mesa's own disk cache (`~/.cache/mesa_shader_cache`) is what makes its warm starts
//! fast (docs/BENCHMARKS.md). The cache is for drivers that compile at pipeline creation.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// The cache of one device and the file it persists to.
pub struct PersistentCache {
    pub cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Set when a pipeline was created with the cache since it was loaded.
    dirty: AtomicBool,
}

impl std::fmt::Debug for PersistentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentCache")
            .field("path", &self.path)
            .finish()
    }
}

/// The directory the cache files go to, or `None` when turned off or no location is known.
fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match env("WGTRAIN_PIPELINE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => env("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("wgtrain")),
    }
}

/// Whether a device on this adapter should be opened with `Features::PIPELINE_CACHE`.
pub fn wanted(adapter: &wgpu::Adapter) -> bool {
    adapter.features().contains(wgpu::Features::PIPELINE_CACHE)
        && wgpu::util::pipeline_cache_key(&adapter.get_info()).is_some()
        && cache_dir().is_some()
}

/// Open the cache for a device created with the feature (see [`wanted`]), seeded from its file.
pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<PersistentCache> {
    let key = wgpu::util::pipeline_cache_key(info)?;
    let path = cache_dir()?.join(format!("{key}.bin"));
    let data = std::fs::read(&path).ok();
    // SAFETY: wgpu checks the data's header (adapter, driver version) and, with `fallback: true`,
    // starts an empty cache when it does not match or the driver rejects it; the file is meant to
    // hold only what `save` wrote (atomically) from a cache with this key.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("wgtrain pipeline cache"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    Some(PersistentCache {
        cache,
        path,
        dirty: AtomicBool::new(false),
    })
}

impl PersistentCache {
    /// Note that a pipeline was created with the cache (so it is worth writing back).
    pub fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Write the cache to its file (temporary file + rename). Returns what failed, if anything.
    pub fn save(&self) -> Result<(), String> {
        let Some(data) = self.cache.get_data() else {
            return Ok(());
        };
        let dir = self.path.parent().expect("the cache file has a directory");
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, &data))
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("{}: {e}", self.path.display())
            })
    }
}

impl Drop for PersistentCache {
    fn drop(&mut self) {
        if self.dirty.load(Ordering::Relaxed) {
            if let Err(e) = self.save() {
                // A lost cache only costs compile time on the next run: say so and go on.
                eprintln!("warning: could not write the pipeline cache ({e}); set WGTRAIN_PIPELINE_CACHE=off to skip it");
            }
        }
    }
}
