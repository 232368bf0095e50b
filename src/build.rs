//! Generates the ONNX protobuf types (`onnx.rs` in OUT_DIR) from ONNX's own schema,
//! `src/export/onnx.proto` (ONNX 1.23.2, proto2, Apache-2.0), with prost-build. protox parses the
//! schema in Rust, so no `protoc` has to be installed.

/// `WGTRAIN_COMMIT`: the git commit being built ("unknown" outside a git checkout), so that a resumed
/// `compare` can refuse parts measured by another build.
fn commit() {
    let head = std::path::Path::new(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(h) = std::fs::read_to_string(head) {
            if let Some(r) = h.trim().strip_prefix("ref: ") {
                println!("cargo:rerun-if-changed=.git/{r}");
            }
        }
    }
    let hash = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WGTRAIN_COMMIT={hash}");
}

fn main() {
    commit();
    let proto = "src/export/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=src/build.rs");
    let fds = protox::compile([proto], ["src/export"])
        .unwrap_or_else(|e| panic!("{proto}: cannot parse the ONNX schema: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{proto}: cannot generate the ONNX types: {e}"));
}
