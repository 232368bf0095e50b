//! The scale claim: the article says ANNs are "less scalable due to the high number of parameters" and
//! CNNs handle "larger images" and are "more computationally efficient, especially for large images".
//! Measured on translated Fashion-MNIST: each 28x28 image at a seeded random position on an S x S zero
//! canvas (train and test alike), for each S of the protocol, every net retrained from scratch.

use super::claims::{train_flops, Claim};
use super::protocol::{Experiment, SeedRecord};
use super::runner::NetChoice;
use super::stats::{mean_sd, verdict_greater, Verdict, RULE};
use super::transforms::place_on_canvas;
use crate::data::Normalization;
use crate::error::Result;
use serde_json::json;

/// One net on one canvas size, one seed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CanvasPoint {
    /// Pixels per side of the canvas.
    pub size: usize,
    pub params: usize,
    pub train_flops_per_image: usize,
    pub test_accuracy: f64,
    /// Median training images/s of the run (the experiment's device).
    pub train_images_per_sec: f64,
}

/// Train `net` from scratch on each canvas size of the protocol.
pub fn measure(exp: &mut Experiment<'_>, net: &NetChoice, seed: u64) -> Result<Vec<CanvasPoint>> {
    let p = exp.protocol;
    let data = exp.data;
    let mut train = data.train.clone();
    train.truncate(p.canvas_train.min(train.len()));
    let mut test = data.test.clone();
    test.truncate(p.canvas_test.min(test.len()));
    let mut points = Vec::new();
    for &size in &p.canvas {
        let tr = place_on_canvas(&train, size, seed, 0);
        let te = place_on_canvas(&test, size, seed, 1);
        let norm = Normalization::from_data(&tr);
        let model = net.build(tr.shape, data.num_classes)?;
        let run = exp.run_with(
            &format!("{} on a {size}x{size} canvas", net.label()),
            &model,
            &model.init_params(seed),
            exp.recipe.optim,
            &tr,
            &te,
            &norm,
            p.canvas_epochs,
            seed,
            false,
        )?;
        points.push(CanvasPoint {
            size,
            params: model.num_params(),
            train_flops_per_image: train_flops(&model),
            test_accuracy: run.final_test(),
            train_images_per_sec: run.train_images_per_sec(),
        });
    }
    Ok(points)
}

fn sizes(r: &[SeedRecord]) -> Vec<usize> {
    r[0].canvas.iter().map(|c| c.size).collect()
}

fn at<T>(r: &[SeedRecord], i: usize, f: impl Fn(&CanvasPoint) -> T) -> Vec<T> {
    r.iter().map(|s| f(&s.canvas[i])).collect()
}

fn ms(v: &[f64]) -> String {
    let (m, s) = mean_sd(v);
    format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
}

/// Whether the comparison has at least two canvas sizes to relate.
pub fn measured(ann: &[SeedRecord], cnn: &[SeedRecord]) -> bool {
    [ann, cnn]
        .iter()
        .all(|r| !r.is_empty() && r.iter().all(|s| s.canvas.len() >= 2))
}

/// (a) Parameters against the number of pixels, counted exactly.
pub fn scale_parameters(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let s = sizes(ann);
    let last = s.len() - 1;
    let p = |r: &[SeedRecord], i: usize| r[0].canvas[i].params as f64;
    let growth = |r: &[SeedRecord]| p(r, last) / p(r, 0);
    let (ga, gc) = (growth(ann), growth(cnn));
    let pixels = (s[last] * s[last]) as f64 / (s[0] * s[0]) as f64;
    let verdict = if gc == 1.0 && ga > 1.0 {
        Verdict::Supported
    } else if gc >= ga {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    };
    let row = |r: &[SeedRecord]| {
        (0..s.len())
            .map(|i| r[0].canvas[i].params)
            .collect::<Vec<_>>()
    };
    Claim {
        id: "scale_parameters".into(),
        title: "Scale: parameters vs image size".into(),
        statement: "an ANN's parameters grow with the number of pixels (\"less scalable due to the high number of parameters\"); a CNN's do not".into(),
        verdict,
        rule: "counted exactly on each canvas size: supported if the CNN's parameter count is the same at the largest canvas as at the smallest while the ANN's grows; not supported if the CNN's grows by at least the ANN's factor; inconclusive otherwise (both grow, the CNN's less)".into(),
        evidence: format!(
            "from {}x{} to {}x{} ({pixels:.2}x the pixels): ANN {} -> {} parameters ({ga:.2}x), CNN {} -> {} ({gc:.2}x)",
            s[0], s[0], s[last], s[last], p(ann, 0), p(ann, last), p(cnn, 0), p(cnn, last)
        ),
        values: json!({ "sizes": s, "ann": row(ann), "cnn": row(cnn) }),
        plot: Some("scale_parameters.png".into()),
        pair: None,
    }
}

/// (b) The CNN's accuracy lead grows with the canvas.
pub fn scale_accuracy(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let s = sizes(ann);
    let last = s.len() - 1;
    let lead = |i: usize| -> Vec<f64> {
        ann.iter()
            .zip(cnn)
            .map(|(a, c)| c.canvas[i].test_accuracy - a.canvas[i].test_accuracy)
            .collect()
    };
    let d: Vec<f64> = lead(last)
        .iter()
        .zip(lead(0))
        .map(|(hi, lo)| 100.0 * (hi - lo))
        .collect();
    let (verdict, mean, sd, margin) = verdict_greater(&d, 0.5);
    let line = (0..s.len())
        .map(|i| {
            format!(
                "{}px: ANN {} / CNN {}",
                s[i],
                ms(&at(ann, i, |c| c.test_accuracy)),
                ms(&at(cnn, i, |c| c.test_accuracy))
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Claim {
        id: "scale_accuracy".into(),
        title: "Scale: accuracy vs image size".into(),
        statement: "CNNs handle larger images: their accuracy lead over an ANN grows with the image size".into(),
        verdict,
        rule: format!("{RULE}; d = (CNN - ANN test accuracy on the {}px canvas) - (the same on the {}px canvas), floor 0.5 points", s[last], s[0]),
        evidence: format!("{line}; lead grows by {mean:+.2} points (sd {sd:.2}, margin {margin:.2})"),
        values: json!({
            "sizes": s,
            "ann": (0..s.len()).map(|i| at(ann, i, |c| c.test_accuracy)).collect::<Vec<_>>(),
            "cnn": (0..s.len()).map(|i| at(cnn, i, |c| c.test_accuracy)).collect::<Vec<_>>(),
            "difference": d,
        }),
        plot: Some("scale_accuracy.png".into()),
        pair: None,
    }
}

/// (c) Compute per image against the canvas, measured (training images/s of the canvas runs).
pub fn scale_compute(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let s = sizes(ann);
    let last = s.len() - 1;
    // Per seed: ln(CNN time per image / ANN time per image), at the smallest minus at the largest
    // canvas: > 0 when the CNN's relative cost falls as images grow.
    let rel = |a: &SeedRecord, c: &SeedRecord, i: usize| {
        (a.canvas[i].train_images_per_sec / c.canvas[i].train_images_per_sec.max(1e-9)).ln()
    };
    let d: Vec<f64> = ann
        .iter()
        .zip(cnn)
        .map(|(a, c)| rel(a, c, 0) - rel(a, c, last))
        .collect();
    let (verdict, mean, _, margin) = verdict_greater(&d, 1.1f64.ln());
    let ips = |r: &[SeedRecord], i: usize| mean_sd(&at(r, i, |c| c.train_images_per_sec)).0;
    let flops = |r: &[SeedRecord], i: usize| r[0].canvas[i].train_flops_per_image as f64 / 1e6;
    let line = (0..s.len())
        .map(|i| {
            format!(
                "{}px: ANN {:.2} MFLOP, {:.0} img/s / CNN {:.2} MFLOP, {:.0} img/s",
                s[i],
                flops(ann, i),
                ips(ann, i),
                flops(cnn, i),
                ips(cnn, i)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Claim {
        id: "scale_compute".into(),
        title: "Scale: compute vs image size".into(),
        statement: "CNNs are \"more computationally efficient, especially for large images\": their cost per image relative to an ANN's falls as images grow".into(),
        verdict,
        rule: format!("{RULE}; per seed d = ln(CNN/ANN training time per image on the {}px canvas) - ln(the same on the {}px canvas), measured on the experiment's device, floor ln 1.1", s[0], s[last]),
        evidence: format!("{line}; the CNN's relative cost changes by a factor {:.2} from the smallest to the largest canvas (margin {:.2}x)", (-mean).exp(), margin.exp()),
        values: json!({
            "sizes": s,
            "train_flops_per_image": { "ann": (0..s.len()).map(|i| ann[0].canvas[i].train_flops_per_image).collect::<Vec<_>>(), "cnn": (0..s.len()).map(|i| cnn[0].canvas[i].train_flops_per_image).collect::<Vec<_>>() },
            "train_images_per_sec": { "ann": (0..s.len()).map(|i| at(ann, i, |c| c.train_images_per_sec)).collect::<Vec<_>>(), "cnn": (0..s.len()).map(|i| at(cnn, i, |c| c.train_images_per_sec)).collect::<Vec<_>>() },
            "difference": d,
        }),
        plot: None,
        pair: None,
    }
}
