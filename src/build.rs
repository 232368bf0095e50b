//! Generates the ONNX protobuf types (`onnx.rs` in OUT_DIR) from ONNX's own schema,
//! `src/export/onnx.proto` (ONNX 1.23.2, proto2, Apache-2.0), with prost-build. protox parses the
//! schema in Rust, so no `protoc` has to be installed.

fn main() {
    let proto = "src/export/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=src/build.rs");
    let fds = protox::compile([proto], ["src/export"])
        .unwrap_or_else(|e| panic!("{proto}: cannot parse the ONNX schema: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{proto}: cannot generate the ONNX types: {e}"));
}
