//! The one error type of the library. Everything a user can cause is a variant here with a message that
//! says what was wrong, where, and what to do; programmer errors inside the engine panic instead.

use std::path::{Path, PathBuf};

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// User-facing failures. `Display` gives a single line meant to be printed as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value or configuration that cannot work (the message names the flag).
    #[error("{0}")]
    Config(String),
    /// A data file or directory that is missing, unreadable or malformed.
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No usable GPU adapter where one was required.
    #[error("no GPU adapter available{0}; install a Vulkan/Metal/DX12 driver (Debian: apt-get install mesa-vulkan-drivers) or use --device cpu")]
    NoAdapter(String),
    /// A wgpu validation error, out-of-memory or device loss, named by the operation that hit it.
    #[error("GPU error during {op}: {msg}")]
    Gpu { op: String, msg: String },
    /// An output that could not be written mid-run (the message says what was kept and where the rest went).
    #[error("{0}")]
    Output(String),
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {epoch}: the loss was {loss} at step {step} (the first step checked after it happened); the last checkpoint, if any, is from the epoch before; lower --lr or check the data")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f64,
    },
}

impl Error {
    pub(crate) fn data(path: &Path, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn gpu(op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Gpu {
            op: op.into(),
            msg: msg.into(),
        }
    }

    /// Process exit code: 2 for usage and input errors (fix the command or the file), 1 for runtime failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Data { .. } | Error::Io { .. } | Error::NoAdapter(_) => 2,
            Error::Gpu { .. } | Error::Diverged { .. } | Error::Output(_) => 1,
        }
    }
}
