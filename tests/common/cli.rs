//! Running the binary as a user would, and what a bad request must look like: a one-line
//! `error: ...` naming the problem, a non-zero exit code, no panic.

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run wgtrain")
}

/// A fresh directory for test `name` of this process.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Assert failure with `code`, stderr containing `needle`, and no panic.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
}

/// [`assert_fails`], and stderr is a single `error: ...` line.
pub fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    assert_fails(out, code, needle);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
}

/// Assert the command succeeded, showing its stderr when not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An IDX file (u8 payload) with dimensions `dims`, as the MNIST family stores them.
pub fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}
