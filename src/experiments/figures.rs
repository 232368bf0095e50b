//! The PNG figures of a compare report: one series per net, mean ± sd over seeds at each point.

use super::compare::Report;
use super::plots::{line_chart, Chart, Series};
use super::protocol::SeedRecord;
use super::stats::mean_sd;
use crate::error::Result;
use std::path::{Path, PathBuf};

/// Mean ± sd over seeds of `f` at each of a record's points, times `scale`: (x, mean), sd.
fn band(
    records: &[SeedRecord],
    scale: f64,
    f: &dyn Fn(&SeedRecord) -> Vec<(f64, f64)>,
) -> (Vec<(f64, f64)>, Vec<f64>) {
    let per: Vec<Vec<(f64, f64)>> = records.iter().map(f).collect();
    let n = per.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|i| {
            let (m, sd) = mean_sd(&per.iter().map(|v| v[i].1).collect::<Vec<_>>());
            ((per[0][i].0, scale * m), scale * sd)
        })
        .unzip()
}

/// One series per net (colour = the net's index) of accuracies in %, with its band over seeds.
fn per_net(
    report: &Report,
    suffix: &str,
    secondary: bool,
    f: &dyn Fn(&SeedRecord) -> Vec<(f64, f64)>,
) -> Vec<Series> {
    per_net_scaled(report, suffix, secondary, 100.0, f)
}

fn per_net_scaled(
    report: &Report,
    suffix: &str,
    secondary: bool,
    scale: f64,
    f: &dyn Fn(&SeedRecord) -> Vec<(f64, f64)>,
) -> Vec<Series> {
    report
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (points, sd) = band(&r.seeds, scale, f);
            Series {
                name: format!("{} ({}){suffix}", r.net, r.family.as_str()),
                points,
                sd,
                secondary,
                color: i,
            }
        })
        .collect()
}

/// Draw every plot of `report` into `dir` (which exists); the paths written, in order.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let first = &report.runs[0].seeds[0];
    let mut written = Vec::new();
    let curve = |g: fn(&crate::train::EpochRecord) -> f64| {
        move |s: &SeedRecord| {
            s.curves
                .iter()
                .map(|e| (e.epoch as f64, g(e)))
                .collect::<Vec<_>>()
        }
    };
    let mut series = per_net(report, " test", false, &curve(|e| e.test_accuracy));
    series.extend(per_net(
        report,
        " train",
        true,
        &curve(|e| e.train_accuracy),
    ));
    let p = dir.join("learning_curves.png");
    line_chart(
        &p,
        &Chart {
            title:
                "Learning curves (mean ± sd over seeds; train = running accuracy during the epoch)",
            x_label: "epoch",
            y_label: "accuracy (%)",
            log_x: false,
            x_ticks: first.curves.len(),
            percent: true,
        },
        &series,
    )?;
    written.push(p);
    let de = |s: &SeedRecord| {
        s.data_efficiency
            .iter()
            .map(|d| (d.0 as f64, d.2))
            .collect()
    };
    let p = dir.join("data_efficiency.png");
    line_chart(
        &p,
        &Chart {
            title: "Data efficiency: test accuracy vs training images (mean ± sd)",
            x_label: "training images (log scale)",
            y_label: "test accuracy (%)",
            log_x: true,
            x_ticks: first.data_efficiency.len(),
            percent: true,
        },
        &per_net(report, "", false, &de),
    )?;
    written.push(p);
    let sh = |s: &SeedRecord| s.shifted.iter().map(|d| (d.0 as f64, d.1)).collect();
    let p = dir.join("translation.png");
    line_chart(
        &p,
        &Chart {
            title: "Translation: test images shifted right and down, no retraining (mean ± sd)",
            x_label: "shift (pixels)",
            y_label: "test accuracy (%)",
            log_x: false,
            x_ticks: first.shifted.len(),
            percent: true,
        },
        &per_net(report, "", false, &sh),
    )?;
    written.push(p);
    if first.canvas.len() >= 2 {
        let acc = |s: &SeedRecord| {
            s.canvas
                .iter()
                .map(|c| (c.size as f64, c.test_accuracy))
                .collect()
        };
        let p = dir.join("scale_accuracy.png");
        line_chart(
            &p,
            &Chart {
                title: "Scale: test accuracy vs canvas size (translated Fashion-MNIST, mean ± sd)",
                x_label: "canvas (pixels per side)",
                y_label: "test accuracy (%)",
                log_x: false,
                x_ticks: first.canvas.len(),
                percent: true,
            },
            &per_net(report, "", false, &acc),
        )?;
        written.push(p);
        // Parameter counts are exact (no spread, no error bars), in thousands.
        let params = |s: &SeedRecord| {
            s.canvas
                .iter()
                .map(|c| (c.size as f64, c.params as f64 / 1e3))
                .collect()
        };
        let series = per_net_scaled(report, "", false, 1.0, &params);
        let p = dir.join("scale_parameters.png");
        line_chart(
            &p,
            &Chart {
                title: "Scale: trainable parameters vs canvas size",
                x_label: "canvas (pixels per side)",
                y_label: "parameters (thousands)",
                log_x: false,
                x_ticks: first.canvas.len(),
                percent: false,
            },
            &series,
        )?;
        written.push(p);
    }
    if !first.probes.is_empty() {
        let probes = |s: &SeedRecord| {
            s.probes
                .iter()
                .map(|p| (p.depth as f64, p.test_accuracy))
                .collect()
        };
        let p = dir.join("probes.png");
        let deepest = report
            .runs
            .iter()
            .map(|r| r.seeds[0].probes.len())
            .max()
            .unwrap_or(1);
        line_chart(
            &p,
            &Chart {
                title: "Linear probes: test accuracy of a linear classifier on frozen features (mean ± sd)",
                x_label: "depth (stages; 0 = pixels)",
                y_label: "probe test accuracy (%)",
                log_x: false,
                x_ticks: deepest,
                percent: true,
            },
            &per_net(report, "", false, &probes),
        )?;
        written.push(p);
    }
    if !first.budget.is_empty() {
        let at_time = |s: &SeedRecord| {
            s.budget
                .iter()
                .map(|p| (p.budget_seconds, p.test_accuracy))
                .collect()
        };
        let p = dir.join("budget_time.png");
        line_chart(
            &p,
            &Chart {
                title: "Equal budgets: test accuracy vs training time on this device (mean ± sd)",
                x_label: "training seconds (log scale)",
                y_label: "test accuracy (%)",
                log_x: true,
                x_ticks: first.budget.len(),
                percent: true,
            },
            &per_net(report, "", false, &at_time),
        )?;
        written.push(p);
    }
    Ok(written)
}
