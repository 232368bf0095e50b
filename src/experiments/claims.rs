//! Each claim people make about CNNs versus plain ANNs, as its own function: the numbers that bear on
//! it, and a verdict from the rule in `stats.rs`.

use super::protocol::SeedRecord;
use super::runner::Throughput;
use super::stats::{mean_sd, verdict_greater, Verdict, RULE};
use crate::nn::Model;
use crate::ops::conv2d::Conv2d;
use crate::ops::matmul::Linear;
use serde_json::json;

/// One claim with its evidence, as it appears in report.json and report.md.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Claim {
    pub id: String,
    pub title: String,
    /// The claim as people state it.
    pub statement: String,
    pub verdict: Verdict,
    /// How the verdict was computed.
    pub rule: String,
    /// One sentence with the deciding numbers.
    pub evidence: String,
    /// Every measured value behind the verdict.
    pub values: serde_json::Value,
    /// PNG file (relative to the report directory) that shows it, if any.
    pub plot: Option<String>,
    /// The two nets the verdict compares (set by `compare::run`).
    pub pair: Option<super::compare::Pair>,
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn ms(values: &[f64]) -> String {
    let (m, s) = mean_sd(values);
    format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
}

/// Accuracy-type verdict: d per seed in percentage points, floor 0.5 points.
fn judged(d: &[f64]) -> (Verdict, String) {
    let pts: Vec<f64> = d.iter().map(|v| 100.0 * v).collect();
    let (v, mean, sd, margin) = verdict_greater(&pts, 0.5);
    (
        v,
        format!("mean difference {mean:+.2} points (sd {sd:.2}, margin {margin:.2})"),
    )
}

fn pairs<'a>(
    ann: &'a [SeedRecord],
    cnn: &'a [SeedRecord],
) -> impl Iterator<Item = (&'a SeedRecord, &'a SeedRecord)> {
    ann.iter().zip(cnn)
}

/// Per-layer parameters, weight reuse and FLOPs of one model.
pub fn model_costs(m: &Model) -> serde_json::Value {
    let mut layers = Vec::new();
    for node in &m.graph.nodes {
        let prefix = format!("{}.", node.path);
        let params: usize = m
            .params
            .iter()
            .filter(|t| t.name.starts_with(&prefix))
            .map(|t| t.len())
            .sum();
        let any = node.op.as_any();
        let (kind, reuse) = if let Some(c) = any.downcast_ref::<Conv2d>() {
            let s = &c.shape;
            (
                format!("conv {}x{} {}->{}", s.kh, s.kw, s.in_c, s.out_c),
                s.p(),
            )
        } else if let Some(l) = any.downcast_ref::<Linear>() {
            (format!("fc {}->{}", l.inp, l.out), 1)
        } else {
            (node.op.kind().to_string(), usize::from(params > 0))
        };
        layers.push(json!({
            "layer": kind,
            "params": params,
            "uses_per_weight_per_image": reuse,
            "forward_flops": 2 * node.op.forward_macs(),
        }));
    }
    json!({
        "model": m.name,
        "arch": m.spec(),
        "params": m.num_params(),
        "forward_flops_per_image": m.forward_flops(),
        "train_flops_per_image": train_flops(m),
        "layers": layers,
    })
}

/// FLOPs of one training step per image: forward, weight gradient (same cost as forward for conv and
/// fc) and input gradient (same again, except for the ops reading the input, which need none).
pub fn train_flops(m: &Model) -> usize {
    let fwd = m.forward_flops();
    let g = &m.graph;
    let first: usize = g
        .nodes
        .iter()
        .filter(|n| n.inputs.iter().any(|&t| g.storage(t) == 0))
        .map(|n| 2 * n.op.forward_macs())
        .sum();
    3 * fwd - first
}

/// The first convolution that reads the input, if any.
pub fn first_conv(m: &Model) -> Option<&Conv2d> {
    m.graph
        .nodes
        .first()
        .and_then(|n| n.op.as_any().downcast_ref::<Conv2d>())
}

pub fn parameters(ann: &Model, cnn: &Model) -> Claim {
    let max_reuse = cnn
        .graph
        .nodes
        .iter()
        .filter_map(|n| n.op.as_any().downcast_ref::<Conv2d>())
        .map(|c| c.shape.p())
        .max()
        .unwrap_or(1);
    let fewer = cnn.num_params() < ann.num_params();
    Claim {
        id: "parameters".into(),
        title: "Parameters and weight sharing".into(),
        statement: "CNNs share weights across positions and so need fewer parameters than an MLP".into(),
        verdict: if fewer { Verdict::Supported } else { Verdict::NotSupported },
        rule: "counted exactly: supported if the CNN has fewer trainable parameters than the ANN".into(),
        evidence: format!(
            "{} has {} parameters, {} has {}; each conv weight is used up to {} times per image, each dense weight once",
            ann.name,
            ann.num_params(),
            cnn.name,
            cnn.num_params(),
            max_reuse
        ),
        values: json!({ "ann": model_costs(ann), "cnn": model_costs(cnn) }),
        plot: None,
        pair: None,
    }
}

pub fn accuracy(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let d: Vec<f64> = pairs(ann, cnn)
        .map(|(a, c)| c.test_accuracy - a.test_accuracy)
        .collect();
    let (verdict, how) = judged(&d);
    let gap = |r: &[SeedRecord]| {
        r.iter()
            .map(|s| s.train_accuracy - s.test_accuracy)
            .collect::<Vec<_>>()
    };
    let test = |r: &[SeedRecord]| r.iter().map(|s| s.test_accuracy).collect::<Vec<_>>();
    let train = |r: &[SeedRecord]| r.iter().map(|s| s.train_accuracy).collect::<Vec<_>>();
    Claim {
        id: "accuracy".into(),
        title: "Accuracy and overfitting".into(),
        statement: "CNNs reach higher test accuracy than MLPs on images".into(),
        verdict,
        rule: format!("{RULE}; d = CNN test accuracy - ANN test accuracy, floor 0.5 points"),
        evidence: format!(
            "test accuracy ANN {} %, CNN {} %; train-test gap ANN {}, CNN {} points; {how}",
            ms(&test(ann)),
            ms(&test(cnn)),
            ms(&gap(ann)),
            ms(&gap(cnn))
        ),
        values: json!({
            "ann": { "test_accuracy": test(ann), "train_accuracy": train(ann), "gap": gap(ann) },
            "cnn": { "test_accuracy": test(cnn), "train_accuracy": train(cnn), "gap": gap(cnn) },
            "difference": d,
        }),
        plot: Some("learning_curves.png".into()),
        pair: None,
    }
}

pub fn data_efficiency(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let sizes: Vec<usize> = ann[0].data_efficiency.iter().map(|e| e.0).collect();
    let at =
        |r: &[SeedRecord], i: usize| r.iter().map(|s| s.data_efficiency[i].2).collect::<Vec<_>>();
    let d: Vec<f64> = pairs(ann, cnn)
        .map(|(a, c)| c.data_efficiency[0].2 - a.data_efficiency[0].2)
        .collect();
    let (verdict, how) = judged(&d);
    let table: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "train_images": n, "epochs": ann[0].data_efficiency[i].1, "ann": at(ann, i), "cnn": at(cnn, i) }))
        .collect();
    let line = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("N={n}: ANN {} / CNN {}", ms(&at(ann, i)), ms(&at(cnn, i))))
        .collect::<Vec<_>>()
        .join("; ");
    Claim {
        id: "data_efficiency".into(),
        title: "Data efficiency".into(),
        statement: "CNNs learn more from fewer labelled images".into(),
        verdict,
        rule: format!("{RULE}; d = CNN - ANN test accuracy at the smallest training set ({} images), floor 0.5 points", sizes[0]),
        evidence: format!("{line}; {how}"),
        values: json!({ "points": table, "difference_at_smallest": d }),
        plot: Some("data_efficiency.png".into()),
        pair: None,
    }
}

pub fn spatial_structure(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let drop = |r: &[SeedRecord]| {
        r.iter()
            .map(|s| s.test_accuracy - s.permuted_test_accuracy)
            .collect::<Vec<_>>()
    };
    let d: Vec<f64> = drop(cnn)
        .iter()
        .zip(drop(ann))
        .map(|(c, a)| c - a)
        .collect();
    let (verdict, how) = judged(&d);
    Claim {
        id: "spatial_structure".into(),
        title: "Spatial structure".into(),
        statement: "CNNs exploit the spatial arrangement of pixels; an MLP is indifferent to it".into(),
        verdict,
        rule: format!("{RULE}; d = CNN accuracy drop - ANN accuracy drop when one fixed random pixel permutation is applied to every training and test image, floor 0.5 points"),
        evidence: format!("drop with permuted pixels: ANN {} points, CNN {} points; {how}", ms(&drop(ann)), ms(&drop(cnn))),
        values: json!({
            "ann": { "permuted_test_accuracy": ann.iter().map(|s| s.permuted_test_accuracy).collect::<Vec<_>>(), "drop": drop(ann) },
            "cnn": { "permuted_test_accuracy": cnn.iter().map(|s| s.permuted_test_accuracy).collect::<Vec<_>>(), "drop": drop(cnn) },
            "difference": d,
        }),
        plot: None,
        pair: None,
    }
}

pub fn translation(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let shifts: Vec<usize> = ann[0].shifted.iter().map(|s| s.0).collect();
    let at = |r: &[SeedRecord], i: usize| r.iter().map(|s| s.shifted[i].1).collect::<Vec<_>>();
    // Judge at the middle shift (2 px by default): accuracy kept, CNN minus ANN.
    let mid = shifts.len() / 2;
    let kept = |r: &SeedRecord| r.shifted[mid].1 - r.shifted[0].1;
    let d: Vec<f64> = pairs(ann, cnn).map(|(a, c)| kept(c) - kept(a)).collect();
    let (verdict, how) = judged(&d);
    let line = shifts
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s}px ANN {} / CNN {}", ms(&at(ann, i)), ms(&at(cnn, i))))
        .collect::<Vec<_>>()
        .join("; ");
    Claim {
        id: "translation".into(),
        title: "Translation robustness".into(),
        statement: "CNNs tolerate shifted inputs better than MLPs".into(),
        verdict,
        rule: format!("{RULE}; d = (CNN accuracy change) - (ANN accuracy change) when the test set is shifted {} px right and down with zero fill, no retraining, floor 0.5 points", shifts[mid]),
        evidence: format!("{line}; {how}"),
        values: json!({
            "shifts_px": shifts,
            "ann": (0..shifts.len()).map(|i| at(ann, i)).collect::<Vec<_>>(),
            "cnn": (0..shifts.len()).map(|i| at(cnn, i)).collect::<Vec<_>>(),
            "difference": d,
        }),
        plot: Some("translation.png".into()),
        pair: None,
    }
}

pub fn transfer(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Option<Claim> {
    let t = |r: &[SeedRecord], f: fn(&super::protocol::TransferRecord) -> f64| {
        r.iter()
            .filter_map(|s| s.transfer.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    if t(ann, |x| x.scratch).is_empty() {
        return None;
    }
    let gain = |r: &[SeedRecord]| -> Vec<f64> {
        r.iter()
            .filter_map(|s| {
                s.transfer
                    .as_ref()
                    .map(|x| x.fine_tuned.max(x.frozen_body) - x.scratch)
            })
            .collect()
    };
    let d: Vec<f64> = gain(cnn)
        .iter()
        .zip(gain(ann))
        .map(|(c, a)| c - a)
        .collect();
    let (verdict, how) = judged(&d);
    let images = ann[0]
        .transfer
        .as_ref()
        .map_or(0, |x| x.new_task_train_images);
    let side = |r: &[SeedRecord]| {
        json!({
            "pretrain_accuracy": t(r, |x| x.pretrain_accuracy),
            "frozen_body": t(r, |x| x.frozen_body),
            "fine_tuned": t(r, |x| x.fine_tuned),
            "scratch": t(r, |x| x.scratch),
            "best_gain_over_scratch": gain(r),
        })
    };
    Some(Claim {
        id: "transfer".into(),
        title: "Transfer learning".into(),
        statement: "features a CNN learns transfer to new classes better than an MLP's".into(),
        verdict,
        rule: format!("{RULE}; gain = best of (body frozen, fine-tuned) minus training from scratch on the same {images} images of the held-out classes; d = CNN gain - ANN gain, floor 0.5 points"),
        evidence: format!(
            "new classes from {images} images: ANN frozen {} / fine-tuned {} / scratch {}; CNN frozen {} / fine-tuned {} / scratch {}; {how}",
            ms(&t(ann, |x| x.frozen_body)), ms(&t(ann, |x| x.fine_tuned)), ms(&t(ann, |x| x.scratch)),
            ms(&t(cnn, |x| x.frozen_body)), ms(&t(cnn, |x| x.fine_tuned)), ms(&t(cnn, |x| x.scratch)),
        ),
        values: json!({ "ann": side(ann), "cnn": side(cnn), "difference": d, "new_task_train_images": images }),
        plot: None,
        pair: None,
    })
}

pub fn compute_cost(
    ann_model: &Model,
    cnn_model: &Model,
    ann: &[SeedRecord],
    cnn: &[SeedRecord],
    throughput: &[Throughput],
) -> Claim {
    // Per seed: log of the ANN/CNN training-throughput ratio on this experiment's device.
    let d: Vec<f64> = pairs(ann, cnn)
        .map(|(a, c)| (a.train_images_per_sec / c.train_images_per_sec.max(1e-9)).ln())
        .collect();
    let (v, mean, _, margin) = verdict_greater(&d, 1.1f64.ln());
    let flops_higher = train_flops(cnn_model) > train_flops(ann_model);
    let verdict = match (v, flops_higher) {
        (Verdict::Supported, true) => Verdict::Supported,
        (Verdict::NotSupported, false) => Verdict::NotSupported,
        _ => Verdict::Inconclusive,
    };
    // Seconds of training to reach a common target: 1 point under the lower of the two final accuracies.
    let final_mean =
        |r: &[SeedRecord]| mean_sd(&r.iter().map(|s| s.test_accuracy).collect::<Vec<_>>()).0;
    let target = final_mean(ann).min(final_mean(cnn)) - 0.01;
    let to_target = |r: &[SeedRecord]| -> Vec<Option<f64>> {
        r.iter()
            .map(|s| {
                let mut t = 0.0;
                s.curves.iter().find_map(|e| {
                    t += e.seconds;
                    (e.test_accuracy >= target).then_some(t)
                })
            })
            .collect()
    };
    let fmt_secs = |v: &[Option<f64>]| {
        let got: Vec<f64> = v.iter().flatten().copied().collect();
        if got.len() < v.len() {
            format!(
                "not reached in {} of {} seeds",
                v.len() - got.len(),
                v.len()
            )
        } else {
            let (m, s) = mean_sd(&got);
            format!("{m:.2} ± {s:.2} s")
        }
    };
    let tp = throughput
        .iter()
        .map(|t| {
            format!(
                "{} on {}{}: train {:.0} img/s, inference {:.0} img/s",
                t.model,
                t.device,
                if t.software_adapter {
                    " (software adapter)"
                } else {
                    ""
                },
                t.train_images_per_sec,
                t.inference_images_per_sec
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Claim {
        id: "compute_cost".into(),
        title: "Compute cost".into(),
        statement: "a CNN costs more compute per image than an MLP".into(),
        verdict,
        rule: "supported when the CNN needs more training FLOPs per image AND trains measurably slower: per-seed d = ln(ANN images/s / CNN images/s) on the experiment's device, margin = max(2 sd, ln 1.1); not supported when both point the other way; inconclusive otherwise".into(),
        evidence: format!(
            "training FLOPs per image ANN {:.3} M, CNN {:.3} M; CNN trains {:.1}x slower (margin {:.2}x); time to {}% test accuracy: ANN {}, CNN {}; {tp}",
            train_flops(ann_model) as f64 / 1e6,
            train_flops(cnn_model) as f64 / 1e6,
            mean.exp(),
            margin.exp(),
            pct(target),
            fmt_secs(&to_target(ann)),
            fmt_secs(&to_target(cnn)),
        ),
        values: json!({
            "train_flops_per_image": { "ann": train_flops(ann_model), "cnn": train_flops(cnn_model) },
            "forward_flops_per_image": { "ann": ann_model.forward_flops(), "cnn": cnn_model.forward_flops() },
            "experiment_train_images_per_sec": {
                "ann": ann.iter().map(|s| s.train_images_per_sec).collect::<Vec<_>>(),
                "cnn": cnn.iter().map(|s| s.train_images_per_sec).collect::<Vec<_>>(),
            },
            "target_accuracy": target,
            "seconds_to_target": { "ann": to_target(ann), "cnn": to_target(cnn) },
            "throughput": throughput,
        }),
        plot: None,
        pair: None,
    }
}
