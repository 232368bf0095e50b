//! Every WGSL file in shaders/ parses and validates with naga — no adapter needed, so a broken shader
//! fails `cargo test` on any machine.

use std::path::Path;

/// Parse and validate `src` with naga; check every entry point keeps to 256 invocations per workgroup.
fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    assert!(!module.entry_points.is_empty(), "{name} has no entry point");
    for ep in &module.entry_points {
        let [x, y, z] = ep.workgroup_size;
        assert!(
            x * y * z <= 256,
            "{name}::{} uses {} invocations per workgroup; the portable limit is 256",
            ep.name,
            x * y * z
        );
    }
}

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        validate(&path.display().to_string(), &src);
        if path.file_name().and_then(|n| n.to_str()) == Some("conv2d.wgsl") {
            // The uniform-window variant the conv launchers build on software adapters.
            let variant = wgtrain::device::window::variant_source(&src);
            validate(&format!("{} (window variant)", path.display()), &variant);
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "expected the engine's shaders, found {checked}"
    );
}

#[test]
fn kernels_embedded_in_the_library_are_the_files_on_disk() {
    // The library include_str!s its kernels; make sure every Kernel points at a file that exists.
    for k in [
        wgtrain::ops::matmul::MATMUL,
        wgtrain::ops::matmul::MATMUL_TILED,
        wgtrain::ops::matmul::MATMUL_NT,
        wgtrain::ops::matmul::MATMUL_NN,
        wgtrain::ops::matmul::MATMUL_TN,
        wgtrain::ops::matmul_tex::MATMUL_TEX_NT,
        wgtrain::ops::matmul_tex::MATMUL_TEX_NN,
        wgtrain::ops::matmul_tex::MATMUL_TEX_TN,
        wgtrain::ops::matmul_tex::PACK_TEX,
        wgtrain::ops::conv2d::CONV2D_FORWARD,
        wgtrain::ops::conv2d::CONV2D_BACKWARD_INPUT,
        wgtrain::ops::conv2d::CONV2D_BACKWARD_WEIGHT,
        wgtrain::ops::conv2d::CONV2D_WEIGHT_REDUCE,
        wgtrain::ops::pool::POOL_FORWARD,
        wgtrain::ops::pool::POOL_BACKWARD,
        wgtrain::ops::softmax_xent::SOFTMAX_XENT,
        wgtrain::optim::ADAM,
        wgtrain::optim::SGD,
    ] {
        assert!(
            k.source.contains(&format!("fn {}(", k.entry)),
            "{}: entry point {} not found in its source",
            k.name,
            k.entry
        );
    }
}
