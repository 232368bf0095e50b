//! Hierarchy: the article says CNNs learn "hierarchical representations". Linear probes measure it:
//! after the base run, for each stage of the trained net a new linear classifier is trained on the
//! frozen features that stage outputs (the transfer claim's frozen prefix), and its test accuracy says
//! how linearly separable the classes are at that depth. Depth 0 is the pixels themselves.
//!
//! A stage ends at every top-level ReLU (a residual block's closing ReLU included), extended over the
//! pooling and dropout layers right after it. BatchNorm layers in a frozen prefix keep PyTorch's
//! training-mode behaviour while the probe trains (batch statistics, running statistics updated), and
//! are evaluated with statistics recomputed over the probe's training images, like every BatchNorm net
//! of the experiment.

use super::claims::Claim;
use super::protocol::{Experiment, SeedRecord};
use super::stats::{mean_sd, verdict_greater, RULE};
use crate::error::{Error, Result};
use crate::nn::Model;
use serde_json::json;

/// One probe: the depth (0 = pixels), the layer it reads, its feature count and its test accuracy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProbePoint {
    pub depth: usize,
    /// The token of the last layer of the frozen prefix ("input" for the pixels).
    pub after: String,
    pub features: usize,
    pub test_accuracy: f64,
}

/// Index of the last layer of each stage of `model`, in order.
pub fn stages(model: &Model) -> Vec<usize> {
    let tokens: Vec<String> = model.layers.iter().map(|l| l.token()).collect();
    let mut ends = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t != "relu" {
            continue;
        }
        let mut end = i;
        while end + 1 < tokens.len()
            && (tokens[end + 1].starts_with("maxpool")
                || tokens[end + 1].starts_with("avgpool")
                || tokens[end + 1].starts_with("dropout"))
        {
            end += 1;
        }
        ends.push(end);
    }
    ends
}

/// The probe model for the prefix `layers[..=end]` (`None`: no prefix) of `model`: that prefix, a
/// flatten where the features are still an image, and a linear layer to the classes.
fn probe_model(model: &Model, end: Option<usize>) -> Result<(Model, String, usize)> {
    let mut tokens: Vec<String> = match end {
        Some(e) => model.layers[..=e].iter().map(|l| l.token()).collect(),
        None => Vec::new(),
    };
    let (after, dims) = match end {
        Some(e) => (tokens[e].clone(), model.layer_outputs[e].clone()),
        None => {
            let s = model.input;
            ("input".to_string(), vec![s.channels, s.height, s.width])
        }
    };
    if dims.len() > 1 {
        tokens.push("flatten".into());
    }
    tokens.push(format!("fc{}", model.num_classes));
    let spec = tokens.join(",");
    let probe =
        crate::models::build_with_classes(None, Some(&spec), model.input, model.num_classes)?;
    Ok((probe, after, dims.iter().product()))
}

/// Train one linear probe per stage (and on the pixels) on the frozen prefix of `trained`, the base
/// run's parameters of `model`.
pub fn measure(
    exp: &mut Experiment<'_>,
    model: &Model,
    trained: &[f32],
    seed: u64,
) -> Result<Vec<ProbePoint>> {
    let p = exp.protocol;
    if p.probe_train == 0 {
        return Ok(Vec::new());
    }
    let data = exp.data;
    let mut train = data.train.clone();
    train.truncate(p.probe_train);
    let mut ends: Vec<Option<usize>> = vec![None];
    ends.extend(stages(model).into_iter().map(Some));
    let mut points = Vec::new();
    for (depth, end) in ends.into_iter().enumerate() {
        let (probe, after, features) = probe_model(model, end)?;
        let prefix = probe.head_offset();
        // The prefix's tensors must be the trained net's leading tensors, at the same offsets.
        let same = probe
            .params
            .iter()
            .filter(|t| t.offset < prefix)
            .zip(&model.params)
            .all(|(a, b)| a.name == b.name && a.offset == b.offset && a.len() == b.len());
        if !same || prefix > trained.len() {
            return Err(Error::Config(format!(
                "probe after {after} of {}: its parameters are not a prefix of the net's",
                model.name
            )));
        }
        let mut init = probe.init_params(seed + 2000);
        init[..prefix].copy_from_slice(&trained[..prefix]);
        let mut optim = exp.recipe.optim;
        optim.frozen_prefix = prefix;
        let run = exp.run(
            &format!(
                "{} probe at depth {depth} (after {after}, {features} features)",
                model.name
            ),
            &probe,
            &init,
            optim,
            &train,
            &data.test,
            p.probe_epochs,
            seed,
        )?;
        points.push(ProbePoint {
            depth,
            after,
            features,
            test_accuracy: run.final_test(),
        });
    }
    Ok(points)
}

/// Whether both sides have probes beyond the pixels.
pub fn measured(ann: &[SeedRecord], cnn: &[SeedRecord]) -> bool {
    let n = |r: &[SeedRecord]| r.first().map_or(0, |s| s.probes.len());
    n(ann) > 1 && n(cnn) > 1
}

/// Probe accuracy gained per stage from the pixels to the deepest stage, in points, per seed.
fn gain_per_stage(r: &[SeedRecord]) -> Vec<f64> {
    r.iter()
        .map(|s| {
            let (first, last) = (&s.probes[0], s.probes.last().expect("probes"));
            100.0 * (last.test_accuracy - first.test_accuracy) / last.depth.max(1) as f64
        })
        .collect()
}

fn by_depth(r: &[SeedRecord]) -> String {
    (0..r[0].probes.len())
        .map(|i| {
            let (m, sd) = mean_sd(
                &r.iter()
                    .map(|s| s.probes[i].test_accuracy)
                    .collect::<Vec<_>>(),
            );
            format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// "Hierarchical representations": the CNN's features become linearly separable faster with depth.
pub fn hierarchy(ann: &[SeedRecord], cnn: &[SeedRecord]) -> Claim {
    let (ga, gc) = (gain_per_stage(ann), gain_per_stage(cnn));
    let d: Vec<f64> = gc.iter().zip(&ga).map(|(c, a)| c - a).collect();
    let (verdict, mean, sd, margin) = verdict_greater(&d, 0.5);
    Claim {
        id: "hierarchy".into(),
        title: "Hierarchical representations (linear probes)".into(),
        statement: "CNNs learn hierarchical representations: a linear classifier on the frozen features after each stage gains more accuracy per stage of depth on the CNN than on the ANN".into(),
        verdict,
        rule: format!("{RULE}; per net, gain = (probe accuracy after the deepest stage - probe accuracy on the pixels) / number of stages, in points; d = CNN gain - ANN gain, floor 0.5 points per stage"),
        evidence: format!(
            "probe accuracy by depth (pixels first): ANN {}; CNN {}; gain per stage ANN {:+.2} ± {:.2}, CNN {:+.2} ± {:.2} points; mean difference {mean:+.2} points (sd {sd:.2}, margin {margin:.2})",
            by_depth(ann),
            by_depth(cnn),
            mean_sd(&ga).0,
            mean_sd(&ga).1,
            mean_sd(&gc).0,
            mean_sd(&gc).1
        ),
        values: json!({"ann_gain_per_stage": ga, "cnn_gain_per_stage": gc}),
        plot: Some("probes.png".into()),
        pair: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_end_at_each_relu_and_take_the_pooling_after_it() {
        let build = |spec: &str| {
            crate::models::build_with_classes(
                None,
                Some(spec),
                crate::data::ImageShape {
                    channels: 1,
                    height: 8,
                    width: 8,
                },
                3,
            )
            .unwrap()
        };
        let cnn = build("conv3x3x4p1,relu,maxpool2,flatten,fc8,relu,dropout0.5,fc3");
        assert_eq!(stages(&cnn), [2, 6]);
        let (p, after, features) = probe_model(&cnn, Some(2)).unwrap();
        assert_eq!((after.as_str(), features), ("maxpool2", 64));
        assert_eq!(p.spec(), "conv3x3x4p1,relu,maxpool2,flatten,fc3");
        let (p, _, features) = probe_model(&cnn, None).unwrap();
        assert_eq!((p.spec().as_str(), features), ("flatten,fc3", 64));
        let res =
            build("conv3x3x4p1nb,bn,relu,res(conv3x3x4p1nb,bn,relu,conv3x3x4p1nb,bn),relu,gap,fc3");
        assert_eq!(
            stages(&res),
            [2, 4],
            "the ReLU inside the block is not a stage"
        );
    }
}
