//! The on-disk pipeline cache (src/device/pipeline_cache.rs): written after a run that built
//! pipelines, read back by the next, a corrupt file ignored rather than fatal, and `off` honoured.
//! Skips with a message when there is no adapter; fails when `CI` is set. Its own test binary, because
//! `WGTRAIN_PIPELINE_CACHE` is process-wide.

mod common;

use std::sync::Arc;
use wgtrain::device::gpu::{GpuContext, PlanBuilder};
use wgtrain::device::{AdapterFilter, Device, DeviceChoice};

fn open() -> Arc<GpuContext> {
    match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
        Ok((Device::Gpu(ctx), _)) => ctx,
        other => panic!("no GPU context: {other:?}"),
    }
}

/// Build and run one kernel, so the context has a pipeline to cache; checks the result.
fn use_a_pipeline(ctx: &GpuContext) {
    let x = common::upload_f32(ctx, &[1.0, 2.0, 3.0, 4.0]);
    let y = common::upload_f32(ctx, &[0.0; 4]);
    let mut pb = PlanBuilder::new(ctx);
    let p = wgtrain::ops::matmul::MatmulParams::new(
        2,
        2,
        2,
        wgtrain::ops::matmul::Strided::rows(0, 2),
        wgtrain::ops::matmul::Strided::rows(0, 2),
        0,
        2,
    );
    wgtrain::ops::matmul::push_matmul(&mut pb, p, &x, &x, &x, &y);
    common::run(ctx, pb);
    assert_eq!(common::download(ctx, &y, 4), vec![7.0, 10.0, 15.0, 22.0]);
}

#[test]
fn pipeline_cache_is_written_read_back_and_survives_a_corrupt_file() {
    // An adapter must exist (or the test is skipped) before the variable matters.
    let Some(_) = common::gpu() else { return };
    let dir = std::env::temp_dir().join(format!("wgtrain-pc-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("WGTRAIN_PIPELINE_CACHE", &dir);
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };

    let ctx = open();
    if !ctx
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE)
    {
        eprintln!("skipping: this adapter's backend has no pipeline cache");
        return;
    }
    use_a_pipeline(&ctx);
    drop(ctx);
    let written = files();
    assert_eq!(
        written.len(),
        1,
        "one cache file, no temporary left: {written:?}"
    );
    assert_eq!(written[0].extension().unwrap(), "bin");

    // Read back: a second context starts from the file and still computes correctly.
    let ctx = open();
    use_a_pipeline(&ctx);
    drop(ctx);

    // A corrupt file is ignored (the driver rejects it; wgpu falls back to an empty cache), then
    // replaced by a good one.
    std::fs::write(&written[0], b"not a pipeline cache").unwrap();
    let ctx = open();
    use_a_pipeline(&ctx);
    drop(ctx);
    assert_ne!(std::fs::read(&written[0]).unwrap(), b"not a pipeline cache");

    // `off`: no file is touched.
    std::fs::remove_dir_all(&dir).unwrap();
    std::env::set_var("WGTRAIN_PIPELINE_CACHE", "off");
    let ctx = open();
    assert!(!ctx
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE));
    use_a_pipeline(&ctx);
    drop(ctx);
    assert!(files().is_empty());
}
