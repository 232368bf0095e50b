//! The binary run as a user would: a real training run with a report and a checkpoint, `eval` of that
//! checkpoint, `devices`, and bad input — each failure a one-line message naming the problem, a
//! non-zero exit code and no panic.

mod common;

use common::cli::{assert_fails, assert_one_line_error, tmpdir, wgtrain};

#[test]
fn train_writes_report_and_checkpoint_and_eval_reads_it() {
    let dir = tmpdir("train");
    let report = dir.join("run.json");
    let ckpt = dir.join("mlp.safetensors");
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--embedded",
        "--epochs",
        "2",
        "--train-size",
        "3000",
        "--report",
        report.to_str().unwrap(),
        "--save",
        ckpt.to_str().unwrap(),
        "--quiet",
        "--log-dir",
        dir.join("logs").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("epoch   2"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["model"], "mlp");
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["params"], 235_146);
    assert_eq!(v["train_images"], 3000);
    let acc = v["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.7 && acc <= 1.0, "{acc}");
    assert!(v["train_images_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["startup_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["adapter"].is_string());
    let epochs = v["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    // --log-dir: a header and one line per epoch, the same numbers as the report, and a plot.
    let csv = std::fs::read_to_string(dir.join("logs/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let last: Vec<f64> = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(last[4], epochs[1]["test_accuracy"].as_f64().unwrap());
    let jsonl = std::fs::read_to_string(dir.join("logs/metrics.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 2);
    assert_eq!(
        &std::fs::read(dir.join("logs/learning_curves.png")).unwrap()[..4],
        b"\x89PNG"
    );
    for key in [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_accuracy",
        "images_per_sec",
        "seconds",
    ] {
        assert!(epochs[1][key].is_number(), "missing {key}");
    }
    // eval of the checkpoint gives the accuracy the training run reported.
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--device",
        "cpu",
        "--embedded",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("accuracy {:.2}%", 100.0 * acc)),
        "{stdout} vs {acc}"
    );
    // The checkpoint holds PyTorch-named tensors of the right shapes.
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("1.weight").unwrap().shape(), &[256, 784]);
    assert_eq!(st.tensor("5.bias").unwrap().shape(), &[10]);

    // predict on PNG files of test images gives the class the model gives those images in memory.
    let data =
        wgtrain::data::load(&wgtrain::data::DataChoice::Embedded, &Default::default()).unwrap();
    let n = 12;
    let mut files = Vec::new();
    for i in 0..n {
        let p = dir.join(format!("img{i}.png"));
        image::GrayImage::from_raw(28, 28, data.test.image(i).to_vec())
            .unwrap()
            .save(&p)
            .unwrap();
        files.push(p.to_str().unwrap().to_string());
    }
    let mut args = vec![
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--device",
        "cpu",
        "--json",
        "--top-k",
        "2",
    ];
    args.extend(files.iter().map(|s| s.as_str()));
    let out = wgtrain(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preds: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (model, params, meta) = wgtrain::checkpoint::load(&ckpt).unwrap();
    let batcher = wgtrain::data::Batcher::new(&meta.normalization, model.input);
    let mut x = vec![0f32; n * 784];
    let mut y = vec![0u32; n];
    batcher.fill(&data.test, &(0..n).collect::<Vec<_>>(), &mut x, &mut y);
    let mut exec = wgtrain::Device::Cpu
        .executor_from(&model, &params, wgtrain::nn::OptimConfig::adam(1e-3), n)
        .unwrap();
    let logits = exec.logits(&x).unwrap();
    for (i, z) in logits.chunks_exact(10).enumerate() {
        let argmax = (0..10).fold(0, |b, c| if z[c] > z[b] { c } else { b });
        let top = &preds[i]["top"];
        assert_eq!(top[0]["class"], argmax, "image {i}");
        assert_eq!(top[0]["name"], wgtrain::data::FASHION_MNIST_CLASSES[argmax]);
        let (p0, p1) = (
            top[0]["probability"].as_f64().unwrap(),
            top[1]["probability"].as_f64().unwrap(),
        );
        assert!(p0 >= p1 && p0 <= 1.0 && p1 >= 0.0);
    }
    // A plain state_dict (what PyTorch's safetensors.torch.save_file writes: the same names and
    // layouts, metadata {"format": "pt"}) loads with --model and gives the same accuracy.
    let plain = dir.join("plain.safetensors");
    {
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        std::fs::write(&plain, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    }
    let args = [
        "eval",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--device",
        "cpu",
        "--embedded",
        "--model",
        "mlp",
    ];
    let out = wgtrain(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("accuracy {:.2}%", 100.0 * acc)));
    // The evaluation pass's A/B switch takes on or off; anything else is an error, not ignored.
    for (value, ok) in [("off", true), ("on", true), ("maybe", false)] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(args)
            .env("WGTRAIN_EVAL_FOLD", value)
            .output()
            .unwrap();
        if ok {
            assert!(
                out.status.success(),
                "{value}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert_one_line_error(&out, 2, "WGTRAIN_EVAL_FOLD=maybe: use on or off");
        }
    }
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--device",
        "cpu",
        "--embedded",
    ]);
    assert_one_line_error(&out, 2, "give --model or --arch");
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--device",
        "cpu",
        "--embedded",
        "--model",
        "cnn",
    ]);
    assert_one_line_error(&out, 2, "has no tensor `0.weight`");
    // export --pytorch: model.py and the state_dict; a plain state_dict or a file as the
    // directory are one-line errors.
    let torch_dir = dir.join("torch");
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--pytorch",
        torch_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py = std::fs::read_to_string(torch_dir.join("model.py")).unwrap();
    assert!(
        py.contains("nn.Linear(784, 256)") && py.contains("strict=True"),
        "{py}"
    );
    assert!(torch_dir.join("weights.safetensors").is_file());
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--pytorch",
        torch_dir.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "plain state_dict");
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--pytorch",
        plain.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "is not a directory");
    // A file that is not an image: a one-line error naming it.
    let junk = dir.join("notes.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let out = wgtrain(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--device",
        "cpu",
        junk.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "notes.png");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn devices_lists_the_cpu() {
    let out = wgtrain(&["devices"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("cpu: "));
    // Every adapter listed shows its kernel policy.
    let adapters = text.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(
        text.matches("    kernels: linear layers on ").count(),
        adapters,
        "{text}"
    );
}

#[test]
fn the_kernel_policy_override_is_validated_and_printed() {
    let with = |var: &str, value: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(args)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env(var, value)
            .output()
            .unwrap()
    };
    let out = with("WGTRAIN_MATMUL", "fastest", &["devices"]);
    assert_one_line_error(&out, 2, "WGTRAIN_MATMUL=fastest: unknown kernel choice");
    let out = with("WGTRAIN_CONV", "texture", &["devices", "--json"]);
    assert_one_line_error(&out, 2, "WGTRAIN_CONV=texture: unknown kernel choice");
    let out = with("WGTRAIN_MATMUL", "tiled", &["devices", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for a in v["adapters"].as_array().unwrap() {
        assert_eq!(a["kernel_policy"]["matmul"], "tiled", "{a}");
        assert_eq!(
            a["kernel_policy"]["source"],
            "overridden by WGTRAIN_MATMUL=tiled"
        );
    }
    // The CPU's convolution kernels: printed, overridable, an unknown value an error before training.
    let out = with("WGTRAIN_CPU_CONV", "fast", &["devices"]);
    assert_one_line_error(&out, 2, "WGTRAIN_CPU_CONV=fast: unknown kernel choice");
    let out = with(
        "WGTRAIN_CPU_CONV",
        "fft",
        &["train", "--embedded", "--model", "cnn", "--device", "cpu"],
    );
    assert_one_line_error(&out, 2, "WGTRAIN_CPU_CONV=fft");
    let out = with("WGTRAIN_CPU_CONV", "gemm", &["devices", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cpu_kernel_policy"]["conv"], "gemm", "{v}");
    assert_eq!(v["cpu_kernel_policy"]["source"], "WGTRAIN_CPU_CONV=gemm");
    // The default: the direct kernels where the CPU has AVX2 and FMA; Winograd is asked for by name.
    let avx2 = wgtrain::ops::conv2d_direct::available();
    let out = with("WGTRAIN_CPU_CONV", "auto", &["devices", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = if avx2 { "direct" } else { "gemm" };
    assert_eq!(v["cpu_kernel_policy"]["conv"], want, "{v}");
    let out = with("WGTRAIN_CPU_CONV", "winograd", &["devices", "--json"]);
    if avx2 {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["cpu_kernel_policy"]["source"],
            "WGTRAIN_CPU_CONV=winograd"
        );
    } else {
        assert_one_line_error(
            &out,
            2,
            "WGTRAIN_CPU_CONV=winograd: this CPU lacks AVX2 or FMA",
        );
    }
    // Their instruction set: the widest the CPU has by default, overridable, validated.
    let out = with("WGTRAIN_CPU_SIMD", "sse2", &["devices"]);
    assert_one_line_error(&out, 2, "WGTRAIN_CPU_SIMD=sse2: unknown kernel choice");
    let avx512 = wgtrain::device::policy::Simd::Avx512.available();
    let out = with("WGTRAIN_CPU_SIMD", "auto", &["devices", "--json"]);
    if avx2 {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = if avx512 { "avx512" } else { "avx2" };
        assert_eq!(v["cpu_kernel_policy"]["simd"], want, "{v}");
    }
    let out = with("WGTRAIN_CPU_SIMD", "avx512", &["devices"]);
    if avx512 {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("direct AVX-512 kernels") && text.contains("WGTRAIN_CPU_SIMD=avx512"),
            "{text}"
        );
    } else {
        assert_one_line_error(&out, 2, "WGTRAIN_CPU_SIMD=avx512: this CPU lacks");
    }
    if avx2 {
        let out = with("WGTRAIN_CPU_SIMD", "avx2", &["devices"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("direct AVX2+FMA kernels"), "{text}");
    }
    let out = with(
        "WGTRAIN_CPU_SIMD",
        "avx9",
        &["train", "--embedded", "--device", "cpu"],
    );
    assert_one_line_error(&out, 2, "WGTRAIN_CPU_SIMD=avx9");
    let bench = [
        "bench",
        "--device",
        "cpu",
        "--no-models",
        "--kernel-filter",
        "maxpool",
    ];
    let out = with("WGTRAIN_CPU_SIMD", "avx9", &bench);
    assert_one_line_error(&out, 2, "WGTRAIN_CPU_SIMD=avx9");
    assert!(out.stdout.is_empty(), "bench measured before the check");
    let out = with("WGTRAIN_CPU_CONV", "gemm", &["devices"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().nth(1).is_some_and(
            |l| l.contains("kernels: convolutions by im2col + GEMM (WGTRAIN_CPU_CONV=gemm)")
        ),
        "{text}"
    );
}

#[test]
fn bad_flags_and_files_fail_with_one_line_messages() {
    let dir = tmpdir("bad");
    let missing = dir.join("nope");
    let out = wgtrain(&[
        "train",
        "--data",
        missing.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_one_line_error(&out, 2, "no such directory");
    std::fs::write(dir.join("train-images-idx3-ubyte"), b"garbage!").unwrap();
    let out = wgtrain(&["train", "--data", dir.to_str().unwrap(), "--device", "cpu"]);
    assert_one_line_error(&out, 2, "missing train-labels");
    for (flag, value, needle) in [
        ("--lr", "-1", "--lr -1"),
        ("--lr", "NaN", "--lr NaN"),
        ("--epochs", "0", "--epochs must be at least 1"),
        ("--batch-size", "0", "--batch-size must be at least 1"),
        (
            "--batch-size",
            "20000",
            "larger than the 10000 training images",
        ),
        ("--momentum", "1.5", "--momentum"),
        ("--model", "resnet50", "unknown model"),
        ("--arch", "flatten,fc10,conv9", "layer 3 `conv9`"),
        ("--threads", "0", "--threads"),
        ("--lr-schedule", "linear", "--lr-schedule linear"),
        ("--augment", "rotate", "--augment rotate"),
    ] {
        let out = wgtrain(&["train", "--device", "cpu", "--embedded", flag, value]);
        assert_one_line_error(&out, 2, needle);
    }
    let d = dir.to_str().unwrap();
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        d,
        "--val-split",
        "1.5",
    ]);
    assert_one_line_error(&out, 2, "--val-split 1.5");
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        d,
        "--image-size",
        "0x4",
    ]);
    assert_one_line_error(&out, 2, "--image-size 0x4");
    // clap rejects unknown values with its own message naming the flag (exit 2).
    let out = wgtrain(&["train", "--device", "tpu"]);
    assert_fails(&out, 2, "--device");
    // A corrupt checkpoint.
    let bad = dir.join("bad.safetensors");
    std::fs::write(&bad, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        bad.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_one_line_error(&out, 2, "not a safetensors checkpoint");
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        missing.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_one_line_error(&out, 2, "nope");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn gpu_without_adapter_is_a_clear_error() {
    // On Linux there is no Metal adapter, so this asks for a GPU that cannot exist here.
    if cfg!(target_os = "macos") {
        return;
    }
    let out = wgtrain(&[
        "train",
        "--device",
        "gpu",
        "--backend",
        "metal",
        "--embedded",
    ]);
    assert_one_line_error(&out, 2, "no GPU adapter available");
    let out = wgtrain(&[
        "train",
        "--device",
        "gpu",
        "--adapter",
        "no-such-card",
        "--embedded",
    ]);
    assert_one_line_error(&out, 2, "--adapter no-such-card");
}

#[test]
fn summary_prints_shapes_params_and_totals() {
    let out = wgtrain(&["summary", "--model", "cnn"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("32x7x7") && s.contains("200832") && s.contains("total: 206922 parameters"),
        "{s}"
    );
    // BatchNorm's running statistics are buffers, listed apart from the parameters: each BN over C
    // channels holds 2C + 1 (mean, var, counter); resnet's 1 + 2 + 3 + 3 BNs over 16, 16, 32, 64
    // channels hold 33 + 66 + 195 + 387 = 681.
    let out = wgtrain(&["summary", "--model", "resnet"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("total: 77754 parameters") && s.contains("681 buffer values"),
        "{s}"
    );
    let out = wgtrain(&[
        "summary",
        "--arch",
        "conv3x3x8,flatten,fc10",
        "--input",
        "3x5",
    ]);
    assert_one_line_error(&out, 2, "--input 3x5");
}

#[test]
fn validation_split_save_best_and_early_stopping() {
    let dir = tmpdir("val");
    let (best, report) = (dir.join("best.safetensors"), dir.join("r.json"));
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--embedded",
        "--train-size",
        "1000",
        "--val-split",
        "0.2",
        "--save-best",
        best.to_str().unwrap(),
        "--early-stop",
        "2",
        "--epochs",
        "40",
        "--lr",
        "0.01",
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("val acc"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // 20 % of each class held out (per-class rounding: the first 1,000 images are not exactly balanced).
    let train_images = v["train_images"].as_u64().unwrap();
    assert!((790..=810).contains(&train_images), "{train_images}");
    let epochs = v["epochs"].as_array().unwrap();
    assert!(epochs.len() < 40, "early stopping never triggered");
    let vals: Vec<f64> = epochs
        .iter()
        .map(|e| e["val_accuracy"].as_f64().unwrap())
        .collect();
    let best_epoch = 1 + (0..vals.len()).fold(0, |b, i| if vals[i] > vals[b] { i } else { b });
    // Stopped exactly `patience` epochs after the best one, and the best checkpoint is that epoch's.
    assert_eq!(epochs.len(), best_epoch + 2);
    let (_, _, meta) = wgtrain::checkpoint::load(&best).unwrap();
    assert_eq!(meta.epoch, best_epoch);
    // --early-stop without a validation set is refused by the flag parser.
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--embedded",
        "--early-stop",
        "2",
    ]);
    assert_fails(&out, 2, "--val-split");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn train_json_prints_only_json_on_stdout() {
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--embedded",
        "--epochs",
        "2",
        "--train-size",
        "500",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1]["epoch"], 2);
    assert_eq!(lines[2]["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(lines[2]["test_accuracy"], lines[1]["test_accuracy"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("device: cpu"));
}

#[test]
fn divergence_stops_training_and_keeps_the_last_good_checkpoint() {
    let dir = tmpdir("diverge");
    let ckpt = dir.join("c.safetensors");
    // Epoch 1 at lr 0.01, then the schedule multiplies the rate by 1e5: epoch 2 diverges.
    let out = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--embedded",
        "--train-size",
        "1000",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--lr-schedule",
        "step:1:100000",
        "--epochs",
        "3",
        "--save",
        ckpt.to_str().unwrap(),
        "--quiet",
    ]);
    assert_one_line_error(&out, 1, "training diverged in epoch 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at step"), "{err}");
    let (_, params, meta) = wgtrain::checkpoint::load(&ckpt).unwrap();
    assert_eq!(meta.epoch, 1);
    assert!(params.params.iter().all(|v| v.is_finite()));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_model_too_large_for_the_adapter_is_an_input_error() {
    let Some(ctx) = common::gpu() else { return };
    // 784 x 50,000 weights + biases = 159,000,048 bytes, over the 128 MiB storage-binding limit of
    // lavapipe and of WebGPU's defaults. An adapter with larger limits must accept it instead.
    let out = wgtrain(&[
        "train",
        "--device",
        "gpu",
        "--embedded",
        "--arch",
        "flatten,fc50000,relu,fc10",
        "--epochs",
        "1",
        "--train-size",
        "64",
        "--quiet",
    ]);
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    if limit < 159_000_048 {
        assert_one_line_error(&out, 2, "the GPU buffer for params needs 159000048 bytes");
    } else {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compare_nets_are_checked_before_any_training() {
    let out = tmpdir("compare-nets");
    let o = out.to_str().unwrap();
    let one_family = wgtrain(&["compare", "--nets", "mlp,mlp-bn", "--out", o]);
    assert_one_line_error(&one_family, 2, "at least one ANN");
    let twice = wgtrain(&["compare", "--nets", "mlp,cnn,mlp", "--out", o]);
    assert_one_line_error(&twice, 2, "names mlp twice");
    let empty = wgtrain(&["compare", "--nets", "mlp,,cnn", "--out", o]);
    assert_one_line_error(&empty, 2, "empty name");
    let small = wgtrain(&["compare", "--canvas", "20,56", "--out", o]);
    assert_one_line_error(&small, 2, "--canvas 20: smaller than the 28x28 images");
    let order = wgtrain(&["compare", "--canvas", "56,28", "--out", o]);
    assert_one_line_error(&order, 2, "increasing order");
    let zero = wgtrain(&["compare", "--budgets", "0,2", "--out", o]);
    assert_one_line_error(&zero, 2, "--budgets 0,2: every budget must be a positive");
    let down = wgtrain(&["compare", "--budgets", "2,0.5", "--out", o]);
    assert_one_line_error(
        &down,
        2,
        "--budgets 2,0.5: give the seconds in increasing order",
    );
    let both = wgtrain(&["compare", "--nets", "mlp,cnn", "--ann", "mlp-bn"]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

#[test]
fn bench_profile_prints_and_records_the_ops_and_refuses_what_it_cannot_time() {
    let dir = tmpdir("profile");
    let json = dir.join("bench.json");
    let out = wgtrain(&[
        "bench",
        "--device",
        "cpu",
        "--no-kernels",
        "--models",
        "cnn",
        "--batch-sizes",
        "8",
        "--seconds",
        "0.01",
        "--profile",
        "--json",
        json.to_str().unwrap(),
    ]);
    common::cli::assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["cnn batch 8, training", "cnn batch 8, inference", "by op: "] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let train = &v["models"][0]["profile"]["train"];
    let kinds: Vec<&str> = train["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"conv2d+relu") && kinds.contains(&"pool"),
        "{kinds:?}"
    );
    assert!(train["step_us"].as_f64().unwrap() > 0.0);
    let out = wgtrain(&["bench", "--no-kernels", "--profile", "--seconds", "0.01"]);
    assert_one_line_error(&out, 2, "--profile times the CPU executor's ops");
    let out = wgtrain(&["bench", "--device", "cpu", "--no-models", "--profile"]);
    assert_one_line_error(&out, 2, "--profile profiles the models");
}
