//! `wgtrain compare` end to end on a tiny synthetic IDX data set: every claim present with a verdict and
//! its rule, the report.json schema, real PNG files, and identical numbers when rerun with the same seeds
//! on the CPU.

use std::path::{Path, PathBuf};
use wgtrain::data::DataChoice;
use wgtrain::experiments::compare::{self, CompareConfig, Report};
use wgtrain::experiments::runner::NetChoice;
use wgtrain::experiments::stats::Verdict;
use wgtrain::rng::Rng;
use wgtrain::Device;

fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    std::fs::write(path, v).unwrap();
}

/// 8x8 images of 10 classes: class c lights a 3x3 block at a class-specific place, plus noise.
fn synthetic(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(9);
    let mut make = |n: usize| {
        let mut images = Vec::with_capacity(n * 64);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i % 10) as u8;
            let (by, bx) = ((c as usize / 4) * 2 + 1, (c as usize % 4) + 1);
            for y in 0..8 {
                for x in 0..8 {
                    let on = (by..by + 3).contains(&y) && (bx..bx + 3).contains(&x);
                    let noise = rng.below(60) as u8;
                    images.push(if on { 190 + noise } else { noise });
                }
            }
            labels.push(c);
        }
        (images, labels)
    };
    let (ti, tl) = make(train);
    let (vi, vl) = make(test);
    write_idx(
        &dir.join("train-images-idx3-ubyte"),
        &[train as u32, 8, 8],
        &ti,
    );
    write_idx(&dir.join("train-labels-idx1-ubyte"), &[train as u32], &tl);
    write_idx(
        &dir.join("t10k-images-idx3-ubyte"),
        &[test as u32, 8, 8],
        &vi,
    );
    write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[test as u32], &vl);
}

fn config(data: PathBuf, out: PathBuf) -> CompareConfig {
    CompareConfig {
        nets: vec![NetChoice::parse("mlp"), NetChoice::parse("cnn")],
        data: DataChoice::Dir(data),
        seeds: 2,
        full: false,
        out,
        batch_size: 64,
        lr: 1e-3,
        throughput_seconds: 0.0,
        canvas: None,
        budgets: Some(vec![0.05, 0.2]),
        command: "test".into(),
        resume: false,
    }
}

fn accuracies(r: &Report) -> Vec<f64> {
    let mut v = Vec::new();
    for runs in &r.runs {
        for s in &runs.seeds {
            v.push(s.test_accuracy);
            v.push(s.permuted_test_accuracy);
            v.extend(s.shifted.iter().map(|x| x.1));
            v.extend(s.data_efficiency.iter().map(|x| x.2));
            let t = s.transfer.as_ref().unwrap();
            v.extend([t.pretrain_accuracy, t.frozen_body, t.fine_tuned, t.scratch]);
            v.extend(s.canvas.iter().map(|c| c.test_accuracy));
            v.extend(s.probes.iter().map(|p| p.test_accuracy));
        }
    }
    v.extend(&r.strong_ann.test_accuracy);
    v
}

#[test]
fn compare_reports_every_claim_and_is_deterministic_on_cpu() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    let root = std::env::temp_dir().join(format!("wgtrain-compare-{}", std::process::id()));
    let data = root.join("data");
    synthetic(&data, 1200, 200);
    let cfg = config(data.clone(), root.join("out"));
    let report = compare::run(&cfg, &Device::Cpu, &mut |_| {}).unwrap();

    let ids: Vec<&str> = report.claims.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "parameters",
            "accuracy",
            "data_efficiency",
            "contradiction_data",
            "spatial_structure",
            "translation",
            "transfer",
            "compute_cost",
            "contradiction_compute",
            "scale_parameters",
            "scale_accuracy",
            "scale_compute",
            "hierarchy",
            "recipe"
        ]
    );
    for c in &report.claims {
        assert!(
            !c.rule.is_empty() && !c.evidence.is_empty() && !c.statement.is_empty(),
            "{}",
            c.id
        );
        assert!(c.values.is_object(), "{}", c.id);
    }
    // The synthetic task is easy: both nets learn it (so the runs really trained).
    assert!(
        report
            .runs
            .iter()
            .all(|r| r.seeds.iter().all(|s| s.test_accuracy > 0.8)),
        "{:?}",
        accuracies(&report)
    );
    assert_eq!(report.best_ann, "mlp");
    assert_eq!(report.pairs.len(), 1);
    assert!(report
        .claims
        .iter()
        .all(|c| c.pair.as_ref() == Some(&report.pairs[0])));
    // Data efficiency: 10 and 100 per class, then the whole 1200.
    let sizes: Vec<usize> = report.runs[0].seeds[0]
        .data_efficiency
        .iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(sizes, [100, 1000, 1200]);
    // Scale: the 8x8 images, then on a 12x12 canvas; both presets end in a dense layer over all
    // positions, so both grow.
    for run in &report.runs {
        let c = &run.seeds[0].canvas;
        assert_eq!(c.iter().map(|c| c.size).collect::<Vec<_>>(), [8, 12]);
        assert!(c[1].params > c[0].params, "{}: {c:?}", run.net);
    }

    // Equal budgets: every net and seed checkpointed on the same grid of training seconds, each
    // checkpoint taken once its budget was spent, with more images seen at each.
    for run in &report.runs {
        for s in &run.seeds {
            let grid: Vec<f64> = s.budget.iter().map(|p| p.budget_seconds).collect();
            assert_eq!(
                grid,
                wgtrain::experiments::budget::grid(&[0.05, 0.2]),
                "{}",
                run.net
            );
            assert!(s.budget.iter().all(|p| p.seconds >= p.budget_seconds));
            assert!(s.budget.windows(2).all(|w| w[1].images > w[0].images));
        }
    }

    // Probes: the pixels, then one per stage (mlp: two ReLUs; cnn: two conv stages and the dense
    // ReLU); the pixel probe does not depend on the net, so both nets' agree exactly.
    let depths = |i: usize| report.runs[i].seeds[0].probes.len();
    assert_eq!((depths(0), depths(1)), (3, 4));
    for s in 0..2 {
        let pixels = |i: usize| report.runs[i].seeds[s].probes[0].test_accuracy;
        assert_eq!(pixels(0), pixels(1));
    }

    let files = compare::write(&report, &cfg.out).unwrap();
    for name in [
        "report.json",
        "report.md",
        "learning_curves.png",
        "data_efficiency.png",
        "translation.png",
        "budget_time.png",
        "probes.png",
    ] {
        let p = cfg.out.join(name);
        assert!(files.contains(&p), "{name} not reported as written");
        let bytes = std::fs::read(&p).unwrap();
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
            assert!(bytes.len() > 10_000, "{name} is suspiciously small");
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.out.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["schema_version"], 2);
    assert_eq!(json["best_ann"], "mlp");
    assert_eq!(json["pairs"][0]["cnn"], "cnn");
    assert_eq!(json["config"]["nets"][1]["family"], "cnn");
    assert_eq!(json["config"]["nets"][0]["family"], "ann");
    for key in [
        "device",
        "adapter",
        "data",
        "protocol",
        "nets",
        "verdict_rule",
        "pairing_rule",
        "batchnorm_protocol",
        "wgtrain_version",
        "date_utc",
    ] {
        assert!(!json["config"][key].is_null(), "config.{key} missing");
    }
    assert_eq!(
        json["config"]["protocol"]["seeds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for claim in json["claims"].as_array().unwrap() {
        for key in [
            "id",
            "title",
            "statement",
            "verdict",
            "rule",
            "evidence",
            "values",
            "pair",
        ] {
            assert!(!claim[key].is_null(), "claim.{key} missing in {claim}");
        }
        let v = claim["verdict"].as_str().unwrap();
        assert!(
            ["supported", "not_supported", "inconclusive"].contains(&v),
            "{v}"
        );
    }
    assert_eq!(json["runs"][1]["seeds"].as_array().unwrap().len(), 2);
    assert!(json["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["device"] == "cpu"));
    let md = std::fs::read_to_string(cfg.out.join("report.md")).unwrap();
    assert!(
        md.contains("## 8. Compute cost")
            && md.contains("![Translation robustness](translation.png)")
    );
    // Each contradiction's verdict quotes both of the article's sentences.
    assert!(
        md.contains("## 4. Contradiction: training data")
            && md.contains("\"CNNs require a lot of training data\"")
            && md.contains("\"more efficient use of training data\""),
        "{md}"
    );

    // Same seeds on the CPU: the same numbers (timings aside).
    let again = compare::run(&cfg, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(accuracies(&report), accuracies(&again));
    let verdicts = |r: &Report| {
        r.claims
            .iter()
            // The verdicts on measured speed may differ between runs.
            .filter(|c| {
                !["compute_cost", "contradiction_compute", "scale_compute"].contains(&c.id.as_str())
            })
            .map(|c| c.verdict)
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&report), verdicts(&again));

    // --resume: a run stopped part-way goes on from the parts the earlier run wrote, measuring only
    // what is missing; what it reads back is the earlier records exactly, timings included.
    let parts = cfg.out.join("parts");
    std::fs::remove_file(parts.join("cnn-seed1.json")).unwrap();
    std::fs::remove_file(parts.join("strong-mlp-bn-shift_1_flip-seed0.json")).unwrap();
    let mut resumed_cfg = cfg.clone();
    resumed_cfg.resume = true;
    let mut lines = Vec::new();
    let resumed = compare::run(&resumed_cfg, &Device::Cpu, &mut |l| lines.push(l)).unwrap();
    assert_eq!(accuracies(&resumed), accuracies(&again));
    assert_eq!(verdicts(&resumed), verdicts(&again));
    let json = |r: &Report, i: usize, s: usize| serde_json::to_value(&r.runs[i].seeds[s]).unwrap();
    for (i, s) in [(0, 0), (0, 1), (1, 0)] {
        assert_eq!(json(&resumed, i, s), json(&again, i, s), "run {i} seed {s}");
    }
    let read_back: Vec<(&str, bool)> = resumed
        .config
        .parts
        .iter()
        .map(|p| (p.name.as_str(), p.resumed))
        .collect();
    assert_eq!(
        read_back,
        [
            ("mlp-seed0", true),
            ("cnn-seed0", true),
            ("mlp-seed1", true),
            ("cnn-seed1", false),
            ("strong-mlp-bn-none-seed0", true),
            ("strong-mlp-bn-none-seed1", true),
            ("strong-mlp-bn-shift:1,flip-seed0", false),
            ("strong-mlp-bn-shift:1,flip-seed1", true),
        ]
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("seed 0, mlp: read back from")));
    assert!(parts.join("cnn-seed1.json").exists());
    // Parts name the build and the machine they were measured on, and those are part of the key.
    assert!(resumed
        .config
        .parts
        .iter()
        .all(|p| p.build == wgtrain::BUILD_COMMIT));
    let part: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parts.join("mlp-seed0.json")).unwrap())
            .unwrap();
    assert_eq!(part["key"]["build"], wgtrain::BUILD_COMMIT);
    assert!(part["key"]["cpu"]["avx2"].is_boolean() && part["key"]["threads"].is_u64());
    // Parts measured under other settings are refused, naming the file and the difference.
    let mut changed = resumed_cfg.clone();
    changed.lr = 2e-3;
    let e = compare::run(&changed, &Device::Cpu, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mlp-seed0.json") && e.contains("lr: 0.001") && e.contains("--resume"),
        "{e}"
    );
    std::fs::remove_dir_all(root).ok();
}

/// `compare --nets` with graph models: BatchNorm (flat and per channel), dropout, residual blocks
/// (identity and projection shortcuts) and global average pooling go through every claim, the transfer
/// claim's frozen body included; two ANNs and two CNNs give one verdict per CNN against the better ANN;
/// the same numbers again on the CPU.
#[test]
fn compare_runs_graph_models_through_every_claim() {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    let root = std::env::temp_dir().join(format!("wgtrain-compare-graph-{}", std::process::id()));
    let data = root.join("data");
    synthetic(&data, 1200, 200);
    let mut cfg = config(data, root.join("out"));
    cfg.seeds = 1;
    cfg.nets = vec![
        NetChoice::parse("flatten,fc48,bn,relu,dropout0.1,fc10"),
        // A deliberately weak ANN: it must not be the one the verdicts use.
        NetChoice::parse("flatten,fc2,fc10"),
        NetChoice::parse(
            "conv3x3x8p1nb,bn,relu,res(conv3x3x8p1nb,bn,relu,conv3x3x8p1nb,bn),relu,\
             res(conv3x3x16p1s2nb,bn,relu,conv3x3x16p1nb,bn),relu,gap,fc10",
        ),
        NetChoice::parse("cnn"),
    ];
    let report = compare::run(&cfg, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(report.claims.len(), 2 * 14);
    let mean = |i: usize| report.runs[i].seeds[0].test_accuracy;
    assert!(mean(0) > mean(1), "{:?}", accuracies(&report));
    assert_eq!(report.best_ann, report.runs[0].net);
    assert_eq!(report.pairs.len(), 2);
    for (p, cnn) in report.pairs.iter().zip([2, 3]) {
        assert_eq!(
            (&p.ann, &p.cnn),
            (&report.runs[0].net, &report.runs[cnn].net)
        );
    }
    let recal: Vec<bool> = report
        .config
        .nets
        .iter()
        .map(|n| n.batchnorm_recalibrated)
        .collect();
    assert_eq!(recal, [true, false, true, false]);
    // The global-average-pooled net keeps its parameter count on the larger canvas; the dense ANN's
    // grows: supported for that pair, and not for the flattening cnn preset.
    let gap = &report.runs[2].seeds[0].canvas;
    assert_eq!(gap[0].params, gap[1].params, "{gap:?}");
    let scale = |p: usize| compare::claim(&report, "scale_parameters", &report.pairs[p]).unwrap();
    assert_eq!(
        scale(0).verdict,
        Verdict::Supported,
        "{}",
        scale(0).evidence
    );
    assert_ne!(
        scale(1).verdict,
        Verdict::Supported,
        "{}",
        scale(1).evidence
    );
    for (i, runs) in report.runs.iter().enumerate() {
        for s in &runs.seeds {
            if i != 1 {
                assert!(s.test_accuracy > 0.8, "{:?}", accuracies(&report));
            }
            let t = s.transfer.as_ref().expect("transfer ran");
            assert!(t.frozen_body > 0.0 && t.fine_tuned > 0.0, "{t:?}");
        }
    }
    let files = compare::write(&report, &cfg.out).unwrap();
    assert!(files.iter().any(|f| f.ends_with("report.md")));
    let md = std::fs::read_to_string(cfg.out.join("report.md")).unwrap();
    for p in &report.pairs {
        assert!(
            md.contains(&p.label()),
            "summary column {} missing",
            p.label()
        );
    }
    let again = compare::run(&cfg, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(accuracies(&report), accuracies(&again));
    std::fs::remove_dir_all(root).ok();
}
