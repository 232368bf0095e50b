//! Equal budgets: the article's table says CNNs are "more computationally efficient", its text that they
//! "are computationally demanding". Each net trains from scratch on the whole training set (the
//! protocol's optimiser and batch, as many epochs as fit) until a wall-clock budget of training time on
//! the experiment's device is spent; the test set is evaluated at checkpoints on a fixed time grid (the
//! clock stopped meanwhile), so every net and seed is judged at the same training seconds. Training
//! FLOPs at each checkpoint are counted from the images seen, which gives the per-FLOP comparison.

use super::claims::{train_flops, Claim};
use super::contradictions::{COMPUTE_TABLE, COMPUTE_TEXT};
use super::protocol::{Experiment, SeedRecord};
use super::runner::NetChoice;
use super::stats::{mean_sd, verdict_greater, Verdict, RULE};
use crate::data::{epoch_order, Batcher};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde_json::json;
use std::time::Instant;

/// One checkpoint of a budget run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BudgetPoint {
    /// Training seconds on the grid this checkpoint belongs to.
    pub budget_seconds: f64,
    /// Training seconds actually spent when it was taken (the step that crossed the budget included).
    pub seconds: f64,
    /// Training images seen (with repetition).
    pub images: usize,
    /// Training FLOPs spent: images seen times the model's training FLOPs per image.
    pub flops: f64,
    pub test_accuracy: f64,
}

/// The checkpoint grid: every budget of the protocol, and below the largest one every factor of 2
/// down to 1/16 of it (for the accuracy-vs-time curve), ascending.
pub fn grid(budgets: &[f64]) -> Vec<f64> {
    let Some(&max) = budgets.iter().max_by(|a, b| a.total_cmp(b)) else {
        return Vec::new();
    };
    let mut g: Vec<f64> = (0..5).map(|k| max / f64::from(1u32 << k)).collect();
    g.extend(budgets);
    g.sort_by(|a, b| a.total_cmp(b));
    g.dedup_by(|a, b| (*a - *b).abs() < 1e-9 * b.abs().max(1.0));
    g
}

/// Train `net` from scratch until the protocol's largest budget of training seconds is spent.
pub fn measure(exp: &mut Experiment<'_>, net: &NetChoice, seed: u64) -> Result<Vec<BudgetPoint>> {
    let grid = grid(&exp.protocol.budgets);
    if grid.is_empty() {
        return Ok(Vec::new());
    }
    let data = exp.data;
    let (train, test) = (&data.train, &data.test);
    let norm = &data.normalization;
    let model = net.build(train.shape, data.num_classes)?;
    let flops_per_image = train_flops(&model) as f64;
    let batch = exp.recipe.batch_size.min(train.len());
    let eval_batch = exp.recipe.eval_batch_size;
    let mut exec = exp.device.executor(
        &model,
        &model.init_params(seed),
        exp.recipe.optim,
        exp.device
            .batch_that_fits(&model, batch, batch.max(eval_batch)),
    )?;
    let bn = crate::calibrate::BnLayout::of(&model);
    let batcher = Batcher::new(norm, train.shape);
    let n = train.shape.len();
    let (mut x, mut y) = (vec![0f32; batch * n], vec![0u32; batch]);
    let mut rng = Rng::derive(seed, 2);
    let (mut spent, mut images) = (0.0f64, 0usize);
    let mut points = Vec::new();
    let started = Instant::now();
    'epochs: for epoch in 1.. {
        let order = epoch_order(train.len(), &mut rng);
        let mut clock = Instant::now();
        for (in_epoch, chunk) in order.chunks(batch).enumerate() {
            let b = chunk.len();
            batcher.fill(train, chunk, &mut x[..b * n], &mut y[..b]);
            exec.train_step(&x[..b * n], &y[..b])?;
            images += b;
            // The clock is read with the device caught up, after every step: a GPU loses its
            // pipelining across steps here, which the budget then honestly pays for.
            exec.wait()?;
            let now = spent + clock.elapsed().as_secs_f64();
            let due = grid[points.len()];
            if now < due {
                continue;
            }
            spent = now;
            let loss = exec.peek_train_loss()?;
            if !loss.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step: in_epoch + 1,
                    loss,
                });
            }
            let _ = exec.take_train_stats()?;
            if let Some(layout) = &bn {
                crate::calibrate::recalibrate_bn(&mut *exec, layout, train, norm, batch)?;
            }
            let acc = crate::train::evaluate(&mut *exec, test, &batcher, eval_batch)?.accuracy();
            points.push(BudgetPoint {
                budget_seconds: due,
                seconds: spent,
                images,
                flops: images as f64 * flops_per_image,
                test_accuracy: acc,
            });
            if points.len() == grid.len() {
                break 'epochs;
            }
            clock = Instant::now();
        }
        spent += clock.elapsed().as_secs_f64();
    }
    let last = points.last().expect("the grid is not empty");
    (exp.log)(format!(
        "  {} budget of {:.1}s: {} images ({:.2} epochs), test accuracy {:.2}% ({:.1}s)",
        net.label(),
        last.budget_seconds,
        last.images,
        last.images as f64 / train.len() as f64,
        100.0 * last.test_accuracy,
        started.elapsed().as_secs_f64()
    ));
    Ok(points)
}

/// Whether both sides measured the same budget grid.
pub fn measured(ann: &[SeedRecord], cnn: &[SeedRecord]) -> bool {
    let g = |r: &[SeedRecord]| r.first().map(|s| s.budget.len()).unwrap_or(0);
    g(ann) > 0 && g(ann) == g(cnn)
}

/// Test accuracy at `flops` training FLOPs, linearly interpolated in log FLOPs between the two
/// checkpoints around it; `None` outside the checkpoints' range (the net did not get that far, or had
/// already passed it at its first checkpoint).
pub fn accuracy_at_flops(points: &[BudgetPoint], flops: f64) -> Option<f64> {
    points.windows(2).find_map(|w| {
        let (a, b) = (&w[0], &w[1]);
        if flops < a.flops || flops > b.flops {
            return None;
        }
        let span = (b.flops / a.flops).ln();
        let t = if span > 0.0 {
            (flops / a.flops).ln() / span
        } else {
            0.0
        };
        Some(a.test_accuracy + t * (b.test_accuracy - a.test_accuracy))
    })
}

/// Per budget of the protocol (ascending): its seconds and the per-seed CNN - ANN differences in points
/// at equal training time, and at the FLOPs the CNN spent within it (seeds where the ANN's run does not
/// cover that FLOP count are left out).
struct Budgets {
    seconds: Vec<f64>,
    at_time: Vec<Vec<f64>>,
    cnn_flops: Vec<f64>,
    at_flops: Vec<Vec<f64>>,
}

fn budgets(ann: &[SeedRecord], cnn: &[SeedRecord], budgets: &[f64]) -> Budgets {
    let mut out = Budgets {
        seconds: Vec::new(),
        at_time: Vec::new(),
        cnn_flops: Vec::new(),
        at_flops: Vec::new(),
    };
    for &b in budgets {
        let at = |s: &SeedRecord| {
            s.budget
                .iter()
                .find(|p| (p.budget_seconds - b).abs() < 1e-9 * b.max(1.0))
                .cloned()
        };
        let mut time = Vec::new();
        let mut flop = Vec::new();
        let mut cnn_flops = Vec::new();
        for (a, c) in ann.iter().zip(cnn) {
            let (Some(pa), Some(pc)) = (at(a), at(c)) else {
                continue;
            };
            time.push(100.0 * (pc.test_accuracy - pa.test_accuracy));
            cnn_flops.push(pc.flops);
            if let Some(acc) = accuracy_at_flops(&a.budget, pc.flops) {
                flop.push(100.0 * (pc.test_accuracy - acc));
            }
        }
        out.seconds.push(b);
        out.at_time.push(time);
        out.cnn_flops.push(mean_sd(&cnn_flops).0);
        out.at_flops.push(flop);
    }
    out
}

fn winner(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "CNN",
        Verdict::NotSupported => "ANN",
        Verdict::Inconclusive => "neither",
    }
}

/// "CNN wins at budget" verdicts for per-budget differences.
fn verdicts(d: &[Vec<f64>]) -> Vec<Option<Verdict>> {
    d.iter()
        .map(|d| (!d.is_empty()).then(|| verdict_greater(d, 0.5).0))
        .collect()
}

fn line(labels: &[String], d: &[Vec<f64>], v: &[Option<Verdict>]) -> String {
    labels
        .iter()
        .zip(d)
        .zip(v)
        .map(|((l, d), v)| match v {
            Some(v) => {
                let (m, sd) = mean_sd(d);
                format!("{l}: {} ({m:+.2} ± {sd:.2} points)", winner(*v))
            }
            None => format!("{l}: not reached by the ANN"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The table's sentence holds (supported) if the CNN wins at some budget and loses at none; the
/// text's (not supported) if it loses at some budget and wins at none; a mix, or ties everywhere, is
/// inconclusive.
pub fn budget_verdict(at: &[Verdict]) -> Verdict {
    let wins = at.contains(&Verdict::Supported);
    let losses = at.contains(&Verdict::NotSupported);
    match (wins, losses) {
        (true, false) => Verdict::Supported,
        (false, true) => Verdict::NotSupported,
        _ => Verdict::Inconclusive,
    }
}

/// "Computationally demanding" (text) against "more computationally efficient" (table), judged by the
/// accuracy each family reaches within the same training time on this device, with equal training
/// FLOPs reported beside it and the cost per image (the text's sense) stated.
pub fn compute_contradiction(
    ann_model: &crate::nn::Model,
    cnn_model: &crate::nn::Model,
    ann: &[SeedRecord],
    cnn: &[SeedRecord],
    budget_list: &[f64],
    device: &str,
) -> Claim {
    let b = budgets(ann, cnn, budget_list);
    let time_v = verdicts(&b.at_time);
    let flop_v = verdicts(&b.at_flops);
    let at: Vec<Verdict> = time_v.iter().flatten().copied().collect();
    let verdict = budget_verdict(&at);
    let secs: Vec<String> = b.seconds.iter().map(|s| format!("{s} s")).collect();
    let flops: Vec<String> = b
        .cnn_flops
        .iter()
        .map(|f| format!("{:.3} TFLOP", f / 1e12))
        .collect();
    let ips =
        |r: &[SeedRecord]| mean_sd(&r.iter().map(|s| s.train_images_per_sec).collect::<Vec<_>>()).0;
    let slower = ips(ann) / ips(cnn).max(1e-9);
    let flop_ratio = train_flops(cnn_model) as f64 / train_flops(ann_model).max(1) as f64;
    Claim {
        id: "contradiction_compute".into(),
        title: "Contradiction: compute".into(),
        statement: format!(
            "the article's text says CNNs \"{COMPUTE_TEXT}\", its table says CNNs are \"{COMPUTE_TABLE}\"; per image the text is measured by compute_cost; here supported means the table is right in the sense a user pays for (within the same training time on {device} the CNN reaches a higher test accuracy at some budget and a lower one at none), not supported means the text is (the ANN wins at some budget and the CNN at none)"
        ),
        verdict,
        rule: format!("{RULE}; at each training-time budget d = CNN - ANN test accuracy, each net trained from scratch on the whole training set until the budget is spent, floor 0.5 points; the winner at a budget is the CNN when supported there, the ANN when not supported; at equal training FLOPs (the CNN's FLOPs at that budget) the ANN's accuracy is interpolated linearly in log FLOPs between its checkpoints (reported, not part of the verdict)"),
        evidence: format!(
            "per image the CNN costs {flop_ratio:.1}x the ANN's training FLOPs and trains {slower:.1}x slower; equal time: {}; equal FLOPs: {}",
            line(&secs, &b.at_time, &time_v),
            line(&flops, &b.at_flops, &flop_v)
        ),
        values: json!({
            "budget_seconds": b.seconds,
            "difference_at_time": b.at_time,
            "winner_at_time": time_v.iter().map(|v| v.map(winner)).collect::<Vec<_>>(),
            "cnn_flops": b.cnn_flops,
            "difference_at_flops": b.at_flops,
            "winner_at_flops": flop_v.iter().map(|v| v.map(winner)).collect::<Vec<_>>(),
        }),
        plot: Some("budget_time.png".into()),
        pair: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Inconclusive as I, NotSupported as N, Supported as S};

    #[test]
    fn the_grid_holds_every_budget_and_halvings_of_the_largest() {
        assert_eq!(grid(&[0.5, 2.0]), [0.125, 0.25, 0.5, 1.0, 2.0]);
        assert_eq!(
            grid(&[10.0, 30.0, 100.0]),
            [6.25, 10.0, 12.5, 25.0, 30.0, 50.0, 100.0]
        );
        assert!(grid(&[]).is_empty());
    }

    #[test]
    fn which_sentence_the_budgets_side_with() {
        assert_eq!(budget_verdict(&[I, S]), S);
        assert_eq!(budget_verdict(&[N, S]), I);
        assert_eq!(budget_verdict(&[N, I]), N);
        assert_eq!(budget_verdict(&[I, I]), I);
    }

    #[test]
    fn flops_interpolate_in_log_space_and_stop_at_the_ends() {
        let p = |flops: f64, acc: f64| BudgetPoint {
            budget_seconds: 0.0,
            seconds: 0.0,
            images: 0,
            flops,
            test_accuracy: acc,
        };
        let pts = [p(1e9, 0.5), p(4e9, 0.7), p(8e9, 0.8)];
        assert_eq!(accuracy_at_flops(&pts, 1e9), Some(0.5));
        assert!((accuracy_at_flops(&pts, 2e9).unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(accuracy_at_flops(&pts, 8e9), Some(0.8));
        assert_eq!(accuracy_at_flops(&pts, 0.5e9), None);
        assert_eq!(accuracy_at_flops(&pts, 9e9), None);
    }
}
