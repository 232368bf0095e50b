//! Crash safety of checkpoints: a training process killed with SIGKILL at arbitrary moments (often in the
//! middle of writing a checkpoint) always leaves a checkpoint that loads.

use std::process::{Command, Stdio};
use std::time::Duration;
use wgtrain::checkpoint;

#[test]
fn sigkill_during_training_never_corrupts_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("wgtrain-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("mlp.safetensors");
    let args = |epochs: &str| {
        vec![
            "train",
            "--device",
            "cpu",
            "--embedded",
            "--model",
            "mlp",
            "--train-size",
            "256",
            "--epochs",
            epochs,
            "--save",
            ckpt.to_str().unwrap(),
            "--quiet",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let bin = env!("CARGO_BIN_EXE_wgtrain");
    let first = Command::new(bin).args(args("1")).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut latest_epoch = 0usize;
    // Each epoch here is ~256 training images, an evaluation and a checkpoint write, so saves happen
    // every few tens of milliseconds and the kills land before, during and after writes.
    for round in 0..12u64 {
        let mut child = Command::new(bin)
            .args(args("100000"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let (model, params, meta) = checkpoint::load(&ckpt).unwrap_or_else(|e| {
            panic!("round {round}: checkpoint does not load after SIGKILL: {e}")
        });
        assert_eq!(params.len(), model.param_len);
        assert!(params.iter().all(|v| v.is_finite()));
        latest_epoch = latest_epoch.max(meta.epoch);
    }
    // The test is only meaningful if the killed runs really were writing checkpoints.
    assert!(latest_epoch > 1, "no killed run got past its first save");
    std::fs::remove_dir_all(dir).ok();
}
