//! `wgtrain compare`: run the protocol for both nets on every seed, compute the claims, and write
//! report.json, report.md and the plots.

use super::claims::{self, Claim};
use super::plots::{line_chart, Chart, Series};
use super::protocol::{Experiment, Protocol, SeedRecord};
use super::runner::{measure_throughput, NetChoice, Recipe, Throughput};
use super::stats::{mean_sd, RULE};
use crate::data::{DataChoice, DataSource};
use crate::device::{AdapterFilter, Device, DeviceChoice};
use crate::error::{Error, Result};
use crate::metrics::{write_atomic, write_json};
use crate::nn::OptimConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything `wgtrain compare` was asked to do.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub ann: NetChoice,
    pub cnn: NetChoice,
    pub data: DataChoice,
    pub seeds: usize,
    pub full: bool,
    pub out: PathBuf,
    pub batch_size: usize,
    pub lr: f32,
    /// Seconds each throughput measurement runs for (after warm-up).
    pub throughput_seconds: f64,
    /// The command line, for the report's "reproduce" line.
    pub command: String,
}

/// Run configuration as recorded in report.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportConfig {
    pub wgtrain_version: String,
    pub date_utc: String,
    pub command: String,
    pub device: String,
    pub adapter: String,
    pub data: DataSource,
    pub train_images: usize,
    pub test_images: usize,
    pub classes: usize,
    pub ann: NetChoice,
    pub cnn: NetChoice,
    pub protocol: Protocol,
    pub optimizer: String,
    pub lr: f32,
    pub batch_size: usize,
    pub verdict_rule: String,
}

/// The whole report (report.json). Schema documented in docs/COMPARE.md.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub config: ReportConfig,
    pub claims: Vec<Claim>,
    pub runs: Runs,
    pub throughput: Vec<Throughput>,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Runs {
    pub ann: Vec<SeedRecord>,
    pub cnn: Vec<SeedRecord>,
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Run the comparison on `device`, printing progress through `log`.
pub fn run(cfg: &CompareConfig, device: &Device, log: &mut dyn FnMut(String)) -> Result<Report> {
    let start = Instant::now();
    if cfg.seeds == 0 {
        return Err(Error::Config("--seeds must be at least 1".into()));
    }
    let data = crate::data::load(&cfg.data, &Default::default())?;
    let protocol = if cfg.full {
        Protocol::full(cfg.seeds, data.train.len())
    } else {
        Protocol::quick(cfg.seeds, data.train.len())
    };
    let ann_model = cfg.ann.build(data.train.shape, data.num_classes)?;
    let cnn_model = cfg.cnn.build(data.train.shape, data.num_classes)?;
    log(format!(
        "compare: {} ({} params) vs {} ({} params) on {} ({} train / {} test), {} seed(s), {} epochs, device {}",
        cfg.ann.label(),
        ann_model.num_params(),
        cfg.cnn.label(),
        cnn_model.num_params(),
        data.source.name,
        data.train.len(),
        data.test.len(),
        protocol.seeds.len(),
        protocol.epochs,
        device.adapter_name()
    ));
    let recipe = Recipe {
        batch_size: cfg.batch_size,
        optim: OptimConfig::adam(cfg.lr),
        eval_batch_size: 500,
    };
    let mut ann = Vec::new();
    let mut cnn = Vec::new();
    for &seed in &protocol.seeds {
        for (net, out) in [(&cfg.ann, &mut ann), (&cfg.cnn, &mut cnn)] {
            log(format!("seed {seed}, {}:", net.label()));
            let mut exp = Experiment {
                device,
                data: &data,
                protocol: &protocol,
                recipe: recipe.clone(),
                log: &mut *log,
            };
            out.push(exp.measure(net, seed)?);
        }
    }
    log("throughput:".into());
    let mut throughput = Vec::new();
    let mut devices = vec![Device::Cpu];
    match device {
        Device::Gpu(_) => devices.push(device.clone()),
        Device::Cpu => match Device::select(DeviceChoice::Gpu, &AdapterFilter::default()) {
            Ok((gpu, _)) => devices.push(gpu),
            Err(e) => log(format!("  no GPU measured: {e}")),
        },
    }
    for dev in &devices {
        for m in [&ann_model, &cnn_model] {
            let t = measure_throughput(
                dev,
                m,
                &data.train,
                &data.normalization,
                cfg.batch_size,
                cfg.throughput_seconds,
            )?;
            log(format!(
                "  {} on {}: train {:.0} img/s, inference {:.0} img/s (warm-up {:.2}s)",
                t.model,
                t.adapter,
                t.train_images_per_sec,
                t.inference_images_per_sec,
                t.warmup_seconds
            ));
            throughput.push(t);
        }
    }
    let mut claims = vec![
        claims::parameters(&ann_model, &cnn_model),
        claims::accuracy(&ann, &cnn),
        claims::data_efficiency(&ann, &cnn),
        claims::spatial_structure(&ann, &cnn),
        claims::translation(&ann, &cnn),
    ];
    claims.extend(claims::transfer(&ann, &cnn));
    claims.push(claims::compute_cost(
        &ann_model,
        &cnn_model,
        &ann,
        &cnn,
        &throughput,
    ));
    let config = ReportConfig {
        wgtrain_version: env!("CARGO_PKG_VERSION").into(),
        date_utc: today_utc(),
        command: cfg.command.clone(),
        device: device.kind().into(),
        adapter: device.adapter_name(),
        data: data.source.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        classes: data.num_classes,
        ann: cfg.ann.clone(),
        cnn: cfg.cnn.clone(),
        protocol,
        optimizer: "adam (0.9, 0.999, 1e-8)".into(),
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        verdict_rule: RULE.into(),
    };
    Ok(Report {
        schema_version: 1,
        config,
        claims,
        runs: Runs { ann, cnn },
        throughput,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

fn mean_curve(
    records: &[SeedRecord],
    f: impl Fn(&crate::train::EpochRecord) -> f64,
) -> Vec<(f64, f64)> {
    let epochs = records[0].curves.len();
    (0..epochs)
        .map(|e| {
            let v: Vec<f64> = records.iter().map(|r| f(&r.curves[e])).collect();
            ((e + 1) as f64, 100.0 * mean_sd(&v).0)
        })
        .collect()
}

/// Write report.json, report.md and the PNG plots into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (ann, cnn) = (&report.runs.ann, &report.runs.cnn);
    let (an, cn) = (report.config.ann.label(), report.config.cnn.label());
    let mut written = Vec::new();
    let p = dir.join("learning_curves.png");
    line_chart(
        &p,
        &Chart {
            title: "Learning curves (mean over seeds; train = running accuracy during the epoch)",
            x_label: "epoch",
            y_label: "accuracy (%)",
            log_x: false,
            x_ticks: ann[0].curves.len(),
        },
        &[
            Series {
                name: format!("{an} test"),
                points: mean_curve(ann, |e| e.test_accuracy),
                secondary: false,
                color: 0,
            },
            Series {
                name: format!("{an} train"),
                points: mean_curve(ann, |e| e.train_accuracy),
                secondary: true,
                color: 0,
            },
            Series {
                name: format!("{cn} test"),
                points: mean_curve(cnn, |e| e.test_accuracy),
                secondary: false,
                color: 1,
            },
            Series {
                name: format!("{cn} train"),
                points: mean_curve(cnn, |e| e.train_accuracy),
                secondary: true,
                color: 1,
            },
        ],
    )?;
    written.push(p);
    let points =
        |r: &[SeedRecord], get: &dyn Fn(&SeedRecord) -> Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            let per: Vec<Vec<(f64, f64)>> = r.iter().map(get).collect();
            (0..per[0].len())
                .map(|i| {
                    (
                        per[0][i].0,
                        100.0 * mean_sd(&per.iter().map(|v| v[i].1).collect::<Vec<_>>()).0,
                    )
                })
                .collect()
        };
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
            title: "Data efficiency: test accuracy vs training images",
            x_label: "training images (log scale)",
            y_label: "test accuracy (%)",
            log_x: true,
            x_ticks: 4,
        },
        &[
            Series {
                name: an.clone(),
                points: points(ann, &de),
                secondary: false,
                color: 0,
            },
            Series {
                name: cn.clone(),
                points: points(cnn, &de),
                secondary: false,
                color: 1,
            },
        ],
    )?;
    written.push(p);
    let sh = |s: &SeedRecord| s.shifted.iter().map(|d| (d.0 as f64, d.1)).collect();
    let p = dir.join("translation.png");
    line_chart(
        &p,
        &Chart {
            title: "Translation: test images shifted right and down, no retraining",
            x_label: "shift (pixels)",
            y_label: "test accuracy (%)",
            log_x: false,
            x_ticks: ann[0].shifted.len(),
        },
        &[
            Series {
                name: an.clone(),
                points: points(ann, &sh),
                secondary: false,
                color: 0,
            },
            Series {
                name: cn.clone(),
                points: points(cnn, &sh),
                secondary: false,
                color: 1,
            },
        ],
    )?;
    written.push(p);
    let json = dir.join("report.json");
    write_json(&json, report)?;
    written.push(json);
    let md = dir.join("report.md");
    write_atomic(&md, super::markdown::render(report).as_bytes())?;
    written.push(md);
    Ok(written)
}

/// The terminal summary: one row per claim.
pub fn summary_table(report: &Report) -> String {
    let mut s = format!("{:<18} {:<14} evidence\n", "claim", "verdict");
    for c in &report.claims {
        s += &format!("{:<18} {:<14} {}\n", c.id, c.verdict.as_str(), c.evidence);
    }
    s
}
