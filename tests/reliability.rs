//! Crash safety of checkpoints: a training process killed with SIGKILL at arbitrary moments (often in the
//! middle of writing a checkpoint) always leaves a checkpoint that loads.

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use wgtrain::checkpoint;

/// Run `wgtrain train` with `args` (as whitespace-free words) plus `extra`.
fn train(args: &[&str], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .arg("train")
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

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
        assert_eq!(params.params.len(), model.param_len);
        assert!(params.params.iter().all(|v| v.is_finite()));
        latest_epoch = latest_epoch.max(meta.epoch);
    }
    // The test is only meaningful if the killed runs really were writing checkpoints.
    assert!(latest_epoch > 1, "no killed run got past its first save");

    // Resuming the surviving checkpoint reproduces an uninterrupted run bit for bit (CPU).
    let (_, _, meta) = checkpoint::load(&ckpt).unwrap();
    let total = (meta.epoch + 2).to_string();
    let out = Command::new(bin)
        .args([
            "train",
            "--device",
            "cpu",
            "--embedded",
            "--train-size",
            "256",
            "--quiet",
        ])
        .args(["--resume", ckpt.to_str().unwrap(), "--epochs", &total])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = dir.join("reference.safetensors");
    let out = Command::new(bin)
        .args([
            "train",
            "--device",
            "cpu",
            "--embedded",
            "--model",
            "mlp",
            "--train-size",
            "256",
        ])
        .args([
            "--epochs",
            &total,
            "--save",
            reference.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, resumed, m1) = checkpoint::load(&ckpt).unwrap();
    let (_, straight, m2) = checkpoint::load(&reference).unwrap();
    assert_eq!((m1.epoch, m2.epoch), (meta.epoch + 2, meta.epoch + 2));
    assert!(
        resumed == straight,
        "resumed weights differ from the uninterrupted run"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn resume_continues_exactly_and_refuses_nothing_to_do() {
    let dir = std::env::temp_dir().join(format!("wgtrain-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = env!("CARGO_BIN_EXE_wgtrain");
    let run = |extra: &[&str]| {
        Command::new(bin)
            .args([
                "train",
                "--device",
                "cpu",
                "--embedded",
                "--train-size",
                "600",
                "--quiet",
            ])
            .args([
                "--model",
                "cnn",
                "--optimizer",
                "sgd",
                "--lr",
                "0.02",
                "--momentum",
                "0.9",
                "--seed",
                "4",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    assert!(run(&["--epochs", "3", "--save", a.to_str().unwrap()])
        .status
        .success());
    assert!(run(&["--epochs", "1", "--save", b.to_str().unwrap()])
        .status
        .success());
    // The run's settings come from the checkpoint; repeating them with the same values is allowed
    // (a different value is refused: tests/resume.rs).
    let out = Command::new(bin)
        .args([
            "train",
            "--device",
            "cpu",
            "--embedded",
            "--train-size",
            "600",
            "--quiet",
        ])
        .args(["--resume", b.to_str().unwrap(), "--epochs", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, pa, _) = checkpoint::load(&a).unwrap();
    let (_, pb, mb) = checkpoint::load(&b).unwrap();
    assert_eq!(mb.epoch, 3);
    assert!(
        pa == pb,
        "1 + 2 resumed epochs differ from 3 straight epochs"
    );
    let sa = checkpoint::load_training_state(&a, pa.params.len(), 3).unwrap();
    let sb = checkpoint::load_training_state(&b, pb.params.len(), 3).unwrap();
    assert_eq!(sa, sb);
    // Nothing left to do: a clear error, exit code 2.
    let out = train(
        &[
            "--embedded",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "3",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already trained 3 epoch(s)"));
    // A checkpoint without its training state: the message names the missing file.
    std::fs::remove_file(checkpoint::state_path(&b)).unwrap();
    let out = train(
        &[
            "--embedded",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "5",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("b.optim.safetensors"));
    std::fs::remove_dir_all(dir).ok();
}
