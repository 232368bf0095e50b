//! A resumed run is the same run (issue 21): `--resume` with no flags repeated gives the straight run's
//! bytes, a contradicting flag is an error naming it, labels are checked, outputs are probed before any
//! work, a save failing mid-run keeps the last good checkpoint and writes a rescue copy, and two runs
//! with the same seed give byte-identical files. Everything as the binary is used.

mod common;

use common::cli::{assert_ok, assert_one_line_error, idx, tmpdir, wgtrain};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wgtrain::checkpoint;

/// `wgtrain train --device cpu --quiet` with `args`.
fn train(args: &[&str]) -> Output {
    let mut all = vec!["train", "--device", "cpu", "--quiet", "--threads", "2"];
    all.extend_from_slice(args);
    wgtrain(&all)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_same_files(a: &Path, b: &Path) {
    for (x, y) in [
        (a.to_path_buf(), b.to_path_buf()),
        (checkpoint::state_path(a), checkpoint::state_path(b)),
    ] {
        let (bx, by) = (std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
        assert!(bx == by, "{} and {} differ", x.display(), y.display());
    }
}

/// 3 epochs straight vs 1 epoch then `--resume --epochs 3` with no other flag: byte-identical weights and
/// training state, for nets with BatchNorm, dropout, a residual block and every run setting in play.
#[test]
fn a_resumed_run_equals_the_straight_run_byte_for_byte() {
    let dir = tmpdir("resume-same");
    let recipes: [&[&str]; 2] = [
        &[
            "--model",
            "mlp-bn",
            "--lr-schedule",
            "cosine",
            "--weight-decay",
            "0.0001",
            "--augment",
            "shift:1,flip",
            "--val-split",
            "0.1",
            "--early-stop",
            "5",
            "--batch-size",
            "50",
        ],
        &[
            "--arch",
            "conv3x3x8p1nb,bn,relu,res(conv3x3x8p1nb,bn,relu,conv3x3x8p1nb,bn),relu,gap,fc10",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
            "--lr-schedule",
            "step:1:0.5",
        ],
    ];
    for (i, recipe) in recipes.iter().enumerate() {
        let (a, b) = (
            dir.join(format!("straight{i}.safetensors")),
            dir.join(format!("resumed{i}.safetensors")),
        );
        let base = ["--embedded", "--train-size", "500", "--seed", "11"];
        let run = |epochs: &str, save: &Path| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend_from_slice(recipe);
            args.extend_from_slice(&["--epochs", epochs, "--save", s(save)]);
            train(&args)
        };
        assert_ok(&run("3", &a));
        assert_ok(&run("1", &b));
        // No run flag repeated: everything comes from the checkpoint.
        assert_ok(&train(&["--resume", s(&b), "--epochs", "3"]));
        assert_same_files(&a, &b);
        // The same seed and settings in another process: the same bytes again (fixed metadata order).
        let c = dir.join(format!("again{i}.safetensors"));
        assert_ok(&run("3", &c));
        assert_same_files(&a, &c);
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_flag_contradicting_the_stored_run_is_an_error_naming_both_values() {
    let dir = tmpdir("resume-conflict");
    let ck = dir.join("run.safetensors");
    assert_ok(&train(&[
        "--embedded",
        "--train-size",
        "300",
        "--epochs",
        "1",
        "--seed",
        "5",
        "--save",
        s(&ck),
    ]));
    let conflicts: [&[&str]; 16] = [
        &["--model", "cnn"],
        &["--arch", "flatten,fc10"],
        &["--batch-size", "32"],
        &["--lr", "0.01"],
        &["--optimizer", "sgd"],
        &["--momentum", "0.5"],
        &["--lr-schedule", "cosine"],
        &["--weight-decay", "0.1"],
        &["--seed", "6"],
        &["--train-size", "200"],
        &["--augment", "flip"],
        &["--val-split", "0.2"],
        &["--early-stop", "2"],
        &["--num-classes", "12"],
        &["--class-names", "a,b,c,d,e,f,g,h,i,j"],
        &["--data", "/usr/share/datasets/fashion-mnist"],
    ];
    for flag in conflicts {
        let mut args = vec!["--resume", s(&ck), "--epochs", "2"];
        args.extend_from_slice(flag);
        let out = train(&args);
        assert_one_line_error(
            &out,
            2,
            &format!("{} {} conflicts with the run", flag[0], flag[1]),
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("drop "),
            "says what to do"
        );
    }
    // The seed's stored value is shown as typed.
    let out = train(&["--resume", s(&ck), "--epochs", "2", "--lr", "0.5"]);
    assert_one_line_error(&out, 2, "(--lr 0.001)");
    // Repeating a stored value, and changing what may change, is fine.
    let out = train(&[
        "--resume",
        s(&ck),
        "--epochs",
        "2",
        "--seed",
        "5",
        "--embedded",
        "--train-size",
        "300",
        "--json",
        "--report",
        s(&dir.join("report.json")),
    ]);
    assert_ok(&out);
    std::fs::remove_dir_all(dir).ok();
}

/// An IDX directory of `labels.len()` training and 20 test 8x8 images.
fn idx_dir(dir: &Path, labels: &[u8], test_labels: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: usize| {
        let px: Vec<u8> = (0..n * 64).map(|i| (i * 37 % 251) as u8).collect();
        idx(&[n as u32, 8, 8], &px)
    };
    let w = |name: &str, b: Vec<u8>| std::fs::write(dir.join(name), b).unwrap();
    w("train-images-idx3-ubyte", images(labels.len()));
    w(
        "train-labels-idx1-ubyte",
        idx(&[labels.len() as u32], labels),
    );
    w("t10k-images-idx3-ubyte", images(test_labels.len()));
    w(
        "t10k-labels-idx1-ubyte",
        idx(&[test_labels.len() as u32], test_labels),
    );
    dir.to_path_buf()
}

#[test]
fn labels_are_checked_and_classes_declared_or_named() {
    let root = tmpdir("labels");
    let mut labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    labels[37] = 200;
    let test: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
    let gap = idx_dir(&root.join("gap"), &labels, &test);
    let out = train(&["--data", s(&gap), "--epochs", "1", "--batch-size", "10"]);
    assert_one_line_error(&out, 2, "label 200 at index 37");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("train-labels-idx1-ubyte"), "{err}");
    assert!(err.contains("labels seen: 0-9, 200"), "{err}");
    assert!(err.contains("--num-classes 201"), "{err}");
    // Declared: trains, and says how many classes are empty.
    let out = train(&[
        "--data",
        s(&gap),
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--num-classes",
        "201",
        "--model",
        "mlp",
    ]);
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("190 of the 201 classes have no training image"),
        "{said}"
    );
    // A test label that is not a training class.
    let mut bad_test = test.clone();
    bad_test[4] = 12;
    let t = idx_dir(&root.join("test"), &test.repeat(5), &bad_test);
    let out = train(&["--data", s(&t), "--epochs", "1", "--batch-size", "10"]);
    assert_one_line_error(&out, 2, "test label 12 at index 4 is not a training class");
    assert!(String::from_utf8_lossy(&out.stderr).contains("t10k-labels-idx1-ubyte"));
    // Class names from classes.txt beside the data, into the checkpoint; a wrong count is an error.
    let named = idx_dir(&root.join("named"), &test.repeat(5), &test);
    let names: Vec<String> = (0..10).map(|c| format!("kind{c}")).collect();
    std::fs::write(named.join("classes.txt"), names.join("\n")).unwrap();
    let ck = root.join("named.safetensors");
    let out = train(&[
        "--data",
        s(&named),
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--save",
        s(&ck),
    ]);
    assert_ok(&out);
    assert_eq!(checkpoint::load(&ck).unwrap().2.class_names, names);
    let out = train(&["--data", s(&named), "--epochs", "1", "--class-names", "a,b"]);
    assert_one_line_error(
        &out,
        2,
        "--class-names: gives 2 class names but the data has 10",
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn resume_refuses_data_that_changed() {
    let root = tmpdir("resume-data");
    let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    let test: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
    let d = idx_dir(&root.join("d"), &labels, &test);
    let ck = root.join("ck.safetensors");
    let args = [
        "--data",
        s(&d),
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--save",
        s(&ck),
    ];
    assert_ok(&train(&args));
    let mut changed = labels.clone();
    changed.swap(0, 1);
    idx_dir(&d, &changed, &test);
    let out = train(&["--resume", s(&ck), "--epochs", "2"]);
    assert_one_line_error(&out, 2, "the data now reads");
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn outputs_are_probed_before_the_first_step() {
    let dir = tmpdir("probe");
    let file = dir.join("plain");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("ck.safetensors");
    let missing = dir.join("no/such/dir/ck.safetensors");
    for (flag, path) in [
        ("--save", under_file.clone()),
        ("--save", missing.clone()),
        ("--report", under_file.clone()),
        ("--save-best", under_file.clone()),
        ("--log-dir", file.clone()),
    ] {
        let mut args = vec!["--embedded", "--epochs", "50", flag, s(&path)];
        if flag == "--save-best" {
            args.extend_from_slice(&["--val-split", "0.1"]);
        }
        let t0 = std::time::Instant::now();
        let out = train(&args);
        assert_one_line_error(&out, 2, &format!("{flag} {}", path.display()));
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("epoch "),
            "no epoch ran"
        );
        assert!(t0.elapsed().as_secs() < 20, "failed before training");
    }
    // A temporary left by a killed run (a PID above Linux's limit, so never alive) is removed.
    let ck = dir.join("ck.safetensors");
    let stale = dir.join(".ck.safetensors.4194999.tmp");
    std::fs::write(&stale, b"torn").unwrap();
    assert_ok(&train(&[
        "--embedded",
        "--train-size",
        "200",
        "--epochs",
        "1",
        "--save",
        s(&ck),
    ]));
    if Path::new("/proc/self").exists() {
        assert!(!stale.exists(), "stale temporary removed");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_save_failing_mid_run_keeps_the_last_good_checkpoint_and_rescues_the_epoch() {
    let dir = tmpdir("rescue");
    let ck = dir.join("ck.safetensors");
    let straight = dir.join("straight.safetensors");
    let base = [
        "--embedded",
        "--train-size",
        "400",
        "--seed",
        "2",
        "--epochs",
        "3",
    ];
    let mut args = base.to_vec();
    args.extend_from_slice(&["--save", s(&straight)]);
    assert_ok(&train(&args));
    // The second write of ck.safetensors (epoch 2's weights) fails, as on a full disk.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgtrain"));
    cmd.args(["train", "--device", "cpu", "--quiet"])
        .args(base)
        .args(["--save", s(&ck)])
        .env("WGTRAIN_FAIL_WRITES_TO", "ck.safetensors:2");
    let out = cmd.output().unwrap();
    assert_one_line_error(&out, 1, "cannot write epoch 2's checkpoint");
    let err = String::from_utf8_lossy(&out.stderr);
    let rescue = dir.join("ck.rescue-epoch2.safetensors");
    assert!(err.contains(s(&rescue)), "{err}");
    // The last good checkpoint still loads, with a matching training state, and resumes.
    let (_, weights, meta) = checkpoint::load(&ck).unwrap();
    assert_eq!(meta.epoch, 1);
    checkpoint::load_training_state(&ck, weights.params.len(), 1).unwrap();
    // The rescued epoch resumes into the straight run's bytes.
    assert_eq!(checkpoint::load(&rescue).unwrap().2.epoch, 2);
    let done = dir.join("done.safetensors");
    assert_ok(&train(&[
        "--resume",
        s(&rescue),
        "--epochs",
        "3",
        "--save",
        s(&done),
    ]));
    assert_same_files(&straight, &done);
    std::fs::remove_dir_all(dir).ok();
}

/// On the GPU too: `--save` after each epoch reads the optimiser's moments back from the device (it
/// once failed there: the buffers could not be copied out), and a resumed run gives the straight run's
/// bytes.
#[test]
fn a_gpu_run_saves_and_resumes_as_the_straight_run() {
    if common::gpu().is_none() {
        return;
    }
    let dir = tmpdir("resume-gpu");
    let (straight, resumed) = (
        dir.join("straight.safetensors"),
        dir.join("resumed.safetensors"),
    );
    let run = |save: &Path, more: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "gpu",
            "--quiet",
            "--model",
            "mlp-bn",
            "--embedded",
            "--train-size",
            "600",
            "--batch-size",
            "64",
            "--seed",
            "5",
            "--save",
            s(save),
        ];
        args.extend_from_slice(more);
        let out = wgtrain(&args);
        assert_ok(&out);
    };
    run(&straight, &["--epochs", "2"]);
    run(&resumed, &["--epochs", "1"]);
    let out = wgtrain(&[
        "train",
        "--device",
        "gpu",
        "--quiet",
        "--resume",
        s(&resumed),
        "--epochs",
        "2",
    ]);
    assert_ok(&out);
    assert_same_files(&straight, &resumed);
}
