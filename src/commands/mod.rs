//! The command implementations `main.rs` calls, one file per command family; the clap types and flag
//! validation they take live in [`crate::cli`].

pub mod bench;
pub mod compare;
pub mod eval;
pub mod info;
pub mod train;

pub use bench::run_bench;
pub use compare::run_compare;
pub use eval::{run_eval, run_export, run_predict};
pub use info::{run_devices, run_summary};
pub use train::run_train;
