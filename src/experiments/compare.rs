//! `wgtrain compare`: run the protocol for both nets on every seed, compute the claims, and write
//! report.json, report.md and the plots.

use super::claims::{self, Claim};
use super::protocol::{Experiment, Protocol, SeedRecord};
use super::runner::{measure_throughput, Family, NetChoice, Recipe, Throughput};
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
    /// The nets, at least one ANN and one CNN (see [`Family`]).
    pub nets: Vec<NetChoice>,
    pub data: DataChoice,
    pub seeds: usize,
    pub full: bool,
    pub out: PathBuf,
    pub batch_size: usize,
    pub lr: f32,
    /// Seconds each throughput measurement runs for (after warm-up).
    pub throughput_seconds: f64,
    /// Canvas sides (pixels) of the scale claim instead of the protocol's (`--canvas`).
    pub canvas: Option<Vec<usize>>,
    /// Training-time budgets (seconds) of the equal-budget comparison instead of the protocol's
    /// (`--budgets`).
    pub budgets: Option<Vec<f64>>,
    /// The command line, for the report's "reproduce" line.
    pub command: String,
    /// Read back the finished parts of an earlier run into `out` (`--resume`, [`super::parts`]).
    pub resume: bool,
}

/// One net of the report, as recorded in report.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetInfo {
    pub label: String,
    pub family: Family,
    pub preset: Option<String>,
    pub arch: String,
    pub params: usize,
    /// Whether its BatchNorm statistics are recomputed over the training set before each evaluation.
    pub batchnorm_recalibrated: bool,
    /// Per-layer parameters, weight reuse and FLOPs (`claims::model_costs`).
    pub costs: serde_json::Value,
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
    pub nets: Vec<NetInfo>,
    pub protocol: Protocol,
    pub optimizer: String,
    pub lr: f32,
    pub batch_size: usize,
    pub verdict_rule: String,
    /// How the ANN each CNN is compared with was chosen.
    pub pairing_rule: String,
    pub batchnorm_protocol: String,
    /// Every (net, seed) record and strong-ANN run, with the build and date that measured it and
    /// whether this run read it back from an earlier one (`--resume`).
    pub parts: Vec<super::parts::PartInfo>,
}

/// The whole report (report.json). Schema documented in docs/COMPARE.md.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub config: ReportConfig,
    /// The ANN every verdict uses (best mean test accuracy of the base runs).
    pub best_ann: String,
    /// The (ANN, CNN) pairs the verdicts compare, in the order of the nets.
    pub pairs: Vec<Pair>,
    pub claims: Vec<Claim>,
    /// Every net's records, in the order of `config.nets`.
    pub runs: Vec<NetRuns>,
    /// The strong-ANN recipe's runs (the recipe claim).
    pub strong_ann: super::recipe::StrongAnn,
    pub throughput: Vec<Throughput>,
    pub wall_seconds: f64,
}

/// The two nets a verdict compares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pair {
    pub ann: String,
    pub cnn: String,
}

impl Pair {
    pub fn label(&self) -> String {
        format!("{} vs {}", self.ann, self.cnn)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NetRuns {
    pub net: String,
    pub family: Family,
    pub seeds: Vec<SeedRecord>,
}

impl Report {
    /// The records of the net labelled `label`.
    pub fn records(&self, label: &str) -> &[SeedRecord] {
        self.runs
            .iter()
            .find(|r| r.net == label)
            .map_or(&[], |r| &r.seeds)
    }
}

pub const PAIRING_RULE: &str = "every CNN is compared with the best ANN: the ANN with the highest mean test accuracy of the base runs";
pub const BATCHNORM_PROTOCOL: &str = "every net with BatchNorm has its running statistics recomputed over its (unaugmented) training set with the final weights of each epoch before that epoch's evaluation (wgtrain train --recalibrate-bn; PyTorch's update_bn), so statistics lagging the weights cannot decide a verdict";

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
    let side = data.train.shape.height.max(data.train.shape.width);
    let mut protocol = if cfg.full {
        Protocol::full(cfg.seeds, data.train.len(), side)
    } else {
        Protocol::quick(cfg.seeds, data.train.len(), side)
    };
    if let Some(sizes) = &cfg.canvas {
        if let Some(s) = sizes.iter().find(|&&s| s < side) {
            return Err(Error::Config(format!(
                "--canvas {s}: smaller than the {side}x{side} images; give sizes of at least {side}"
            )));
        }
        if sizes.len() < 2 || sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Config(format!(
                "--canvas {}: give at least two sizes in increasing order, e.g. {side},{}",
                sizes
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                2 * side
            )));
        }
        protocol.canvas = sizes.clone();
    }
    if let Some(b) = &cfg.budgets {
        let list = b
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if b.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::Config(format!(
                "--budgets {list}: every budget must be a positive number of seconds, e.g. 0.5,2"
            )));
        }
        if b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Config(format!(
                "--budgets {list}: give the seconds in increasing order, e.g. 0.5,2"
            )));
        }
        protocol.budgets = b.clone();
    }
    let models = cfg
        .nets
        .iter()
        .map(|n| n.build(data.train.shape, data.num_classes))
        .collect::<Result<Vec<_>>>()?;
    let families: Vec<Family> = models.iter().map(Family::of).collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(m) = models.iter().find(|m| !seen.insert(m.name.clone())) {
        return Err(Error::Config(format!(
            "--nets names {} twice; list each net once",
            m.name
        )));
    }
    if !families.contains(&Family::Ann) || !families.contains(&Family::Cnn) {
        return Err(Error::Config(format!(
            "--nets {}: compare needs at least one ANN (no convolution) and one CNN (with one), e.g. --nets mlp,cnn",
            models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(",")
        )));
    }
    log(format!(
        "compare: {} on {} ({} train / {} test), {} seed(s), {} epochs, device {}",
        models
            .iter()
            .zip(&families)
            .map(|(m, f)| format!("{} ({}, {} params)", m.name, f.as_str(), m.num_params()))
            .collect::<Vec<_>>()
            .join(", "),
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
        augment: None,
    };
    let date_utc = today_utc();
    let mut key = serde_json::json!({
        "data": data.source,
        "train_images": data.train.len(),
        "test_images": data.test.len(),
        "device": device.kind(),
        "adapter": device.adapter_name(),
        "protocol": protocol,
        "batch_size": recipe.batch_size,
        "eval_batch_size": recipe.eval_batch_size,
        "lr": cfg.lr,
        // The same build on the same kind of machine: timings from another would mix silently.
        "build": crate::BUILD_COMMIT,
        "cpu": crate::device::cpu_identity(),
        "threads": rayon::current_num_threads(),
    });
    // The seeds are in the part's name: a run with more seeds can resume one with fewer.
    key["protocol"]
        .as_object_mut()
        .expect("the protocol is a JSON object")
        .remove("seeds");
    let mut parts = super::parts::Parts::new(&cfg.out, cfg.resume, key, date_utc.clone());
    if cfg.resume && !cfg.out.join("parts").is_dir() {
        log(format!(
            "--resume: {} holds no finished parts yet; measuring everything",
            cfg.out.display()
        ));
    }
    let mut runs: Vec<NetRuns> = models
        .iter()
        .zip(&families)
        .map(|(m, &family)| NetRuns {
            net: m.name.clone(),
            family,
            seeds: Vec::new(),
        })
        .collect();
    for &seed in &protocol.seeds {
        for ((net, model), out) in cfg.nets.iter().zip(&models).zip(runs.iter_mut()) {
            let name = format!("{}-seed{seed}", model.name);
            let arch = model.spec();
            if let Some(r) = parts.load(&name, &arch)? {
                log(format!(
                    "seed {seed}, {}: read back from {}",
                    net.label(),
                    parts.path(&name).display()
                ));
                out.seeds.push(r);
                continue;
            }
            log(format!("seed {seed}, {}:", net.label()));
            let mut exp = Experiment {
                device,
                data: &data,
                protocol: &protocol,
                recipe: recipe.clone(),
                log: &mut *log,
            };
            let r = exp.measure(net, seed)?;
            parts.store(&name, &arch, &r)?;
            out.seeds.push(r);
        }
    }
    let base: Vec<_> = models
        .iter()
        .zip(&runs)
        .map(|(m, r)| (m, &r.seeds[..]))
        .collect();
    let strong_ann = super::recipe::measure(
        &mut Experiment {
            device,
            data: &data,
            protocol: &protocol,
            recipe: recipe.clone(),
            log: &mut *log,
        },
        &base,
        &mut parts,
    )?;
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
    // At the data's own size, then on each larger canvas of the scale claim.
    let base_size = data.train.shape.height.max(data.train.shape.width);
    let mut sized = vec![(data.train.clone(), data.normalization.clone())];
    let mut first = data.train.clone();
    first.truncate(cfg.batch_size.min(first.len()));
    for &size in protocol.canvas.iter().filter(|&&s| s > base_size) {
        let c = super::transforms::place_on_canvas(&first, size, 0, 0);
        let norm = crate::data::Normalization::from_data(&c);
        sized.push((c, norm));
    }
    for dev in &devices {
        for (images, norm) in &sized {
            for (net, base) in cfg.nets.iter().zip(&models) {
                let m = if images.shape == data.train.shape {
                    base.clone()
                } else {
                    net.build(images.shape, data.num_classes)?
                };
                let t = measure_throughput(
                    dev,
                    &m,
                    images,
                    norm,
                    cfg.batch_size,
                    cfg.throughput_seconds,
                )?;
                log(format!(
                    "  {} at {}x{} on {}: train {:.0} img/s, inference {:.0} img/s (warm-up {:.2}s)",
                    t.model,
                    t.image_size,
                    t.image_size,
                    t.adapter,
                    t.train_images_per_sec,
                    t.inference_images_per_sec,
                    t.warmup_seconds
                ));
                throughput.push(t);
            }
        }
    }
    let mean_test =
        |r: &NetRuns| mean_sd(&r.seeds.iter().map(|s| s.test_accuracy).collect::<Vec<_>>()).0;
    let best = (0..runs.len())
        .filter(|&i| families[i] == Family::Ann)
        .max_by(|&a, &b| mean_test(&runs[a]).total_cmp(&mean_test(&runs[b])))
        .expect("at least one ANN");
    let mut pairs = Vec::new();
    let mut claims = Vec::new();
    for c in (0..runs.len()).filter(|&i| families[i] == Family::Cnn) {
        let pair = Pair {
            ann: runs[best].net.clone(),
            cnn: runs[c].net.clone(),
        };
        let (ann, cnn) = (&runs[best].seeds, &runs[c].seeds);
        let (am, cm) = (&models[best], &models[c]);
        let pair_tp: Vec<Throughput> = throughput
            .iter()
            .filter(|t| (t.model == am.name || t.model == cm.name) && t.image_size == base_size)
            .cloned()
            .collect();
        let mut these = vec![
            claims::parameters(am, cm),
            claims::accuracy(ann, cnn),
            claims::data_efficiency(ann, cnn),
            super::contradictions::training_data(ann, cnn, data.num_classes),
            claims::spatial_structure(ann, cnn),
            claims::translation(ann, cnn),
        ];
        these.extend(claims::transfer(ann, cnn));
        these.push(claims::compute_cost(am, cm, ann, cnn, &pair_tp));
        if super::budget::measured(ann, cnn) {
            these.push(super::budget::compute_contradiction(
                am,
                cm,
                ann,
                cnn,
                &protocol.budgets,
                device.kind(),
            ));
        }
        if super::scale::measured(ann, cnn) {
            these.push(super::scale::scale_parameters(ann, cnn));
            these.push(super::scale::scale_accuracy(ann, cnn));
            these.push(super::scale::scale_compute(ann, cnn));
        }
        if super::probes::measured(ann, cnn) {
            these.push(super::probes::hierarchy(ann, cnn));
        }
        these.push(super::recipe::claim(ann, cnn, &strong_ann));
        for mut claim in these {
            claim.pair = Some(pair.clone());
            claims.push(claim);
        }
        pairs.push(pair);
    }
    let nets = cfg
        .nets
        .iter()
        .zip(&models)
        .zip(&families)
        .map(|((n, m), &family)| NetInfo {
            label: m.name.clone(),
            family,
            preset: n.preset.clone(),
            arch: m.spec(),
            params: m.num_params(),
            batchnorm_recalibrated: crate::calibrate::BnLayout::of(m).is_some(),
            costs: claims::model_costs(m),
        })
        .collect();
    let config = ReportConfig {
        wgtrain_version: env!("CARGO_PKG_VERSION").into(),
        date_utc,
        command: cfg.command.clone(),
        device: device.kind().into(),
        adapter: device.adapter_name(),
        data: data.source.clone(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        classes: data.num_classes,
        nets,
        protocol,
        optimizer: "adam (0.9, 0.999, 1e-8)".into(),
        lr: cfg.lr,
        batch_size: cfg.batch_size,
        verdict_rule: RULE.into(),
        pairing_rule: PAIRING_RULE.into(),
        batchnorm_protocol: BATCHNORM_PROTOCOL.into(),
        parts: parts.used,
    };
    Ok(Report {
        schema_version: 2,
        config,
        best_ann: runs[best].net.clone(),
        pairs,
        claims,
        runs,
        strong_ann,
        throughput,
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

/// Write report.json, report.md and the PNG plots into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = super::figures::write(report, dir)?;
    let json = dir.join("report.json");
    write_json(&json, report)?;
    written.push(json);
    let md = dir.join("report.md");
    write_atomic(&md, super::markdown::render(report).as_bytes())?;
    written.push(md);
    Ok(written)
}

/// The claims' ids in report order, each once.
pub fn claim_ids(report: &Report) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for c in &report.claims {
        if !ids.contains(&c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    ids
}

/// The claim `id` judged for `pair`, if measured.
pub fn claim<'a>(report: &'a Report, id: &str, pair: &Pair) -> Option<&'a Claim> {
    report
        .claims
        .iter()
        .find(|c| c.id == id && c.pair.as_ref() == Some(pair))
}

/// The terminal summary: one row per claim, one verdict column per pair; then each verdict's evidence.
pub fn summary_table(report: &Report) -> String {
    let ids = claim_ids(report);
    let w = ids.iter().map(|id| id.len()).max().unwrap_or(0).max(5);
    let mut s = format!("{:<w$}", "claim");
    for p in &report.pairs {
        s += &format!("  {:<24}", p.label());
    }
    s = s.trim_end().to_string();
    s.push('\n');
    for id in ids {
        let mut line = format!("{id:<w$}");
        for p in &report.pairs {
            let v = claim(report, id, p).map_or("-", |c| c.verdict.as_str());
            line += &format!("  {v:<24}");
        }
        s += line.trim_end();
        s.push('\n');
    }
    s.push('\n');
    for c in &report.claims {
        let pair = c
            .pair
            .as_ref()
            .map_or(String::new(), |p| format!(" [{}]", p.label()));
        s += &format!("{}{pair}: {} — {}\n", c.id, c.verdict.as_str(), c.evidence);
    }
    s
}
