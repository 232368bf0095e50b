//! `wgtrain compare`: the command around `experiments::compare`.

use crate::cli::*;
use crate::data::DataChoice;
use crate::error::{Error, Result};
use crate::experiments::compare::{self, CompareConfig};
use crate::experiments::runner::NetChoice;

/// `wgtrain compare`.
pub fn run_compare(args: &CompareArgs) -> Result<()> {
    if args.seeds == 0 {
        return Err(Error::Config("--seeds must be at least 1".into()));
    }
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Error::Config(format!(
            "--lr {} is not a positive finite number; try 0.001",
            args.lr
        )));
    }
    if !(args.throughput_seconds.is_finite() && args.throughput_seconds >= 0.0) {
        return Err(Error::Config(
            "--throughput-seconds must be a non-negative number".into(),
        ));
    }
    let data = match (&args.data, args.full) {
        (Some(d), _) => DataChoice::Dir(d.clone()),
        (None, true) => DataChoice::Default,
        (None, false) => DataChoice::Embedded,
    };
    let nets: Vec<NetChoice> = if args.nets.is_empty() && args.net_arch.is_empty() {
        vec![NetChoice::parse(&args.ann), NetChoice::parse(&args.cnn)]
    } else {
        let mut nets = Vec::new();
        for name in &args.nets {
            if name.trim().is_empty() {
                return Err(Error::Config(
                    "--nets has an empty name; list presets separated by commas, e.g. --nets mlp,cnn"
                        .into(),
                ));
            }
            nets.push(NetChoice {
                preset: Some(name.trim().to_string()),
                arch: None,
            });
        }
        for spec in &args.net_arch {
            nets.push(NetChoice {
                preset: None,
                arch: Some(spec.clone()),
            });
        }
        nets
    };
    crate::outputs::probe_dir(&args.out, "--out")?;
    let (device, why) = args.device.select()?;
    println!("device: {why}");
    let cfg = CompareConfig {
        nets,
        data,
        seeds: args.seeds,
        full: args.full,
        out: args.out.clone(),
        batch_size: args.batch_size,
        lr: args.lr,
        throughput_seconds: args.throughput_seconds,
        canvas: (!args.canvas.is_empty()).then(|| args.canvas.clone()),
        budgets: (!args.budgets.is_empty()).then(|| args.budgets.clone()),
        command: reproduce_command(),
        resume: args.resume,
    };
    // Fail on an unwritable output directory before spending minutes training.
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let report = compare::run(&cfg, &device, &mut |line| println!("{line}"))?;
    let files = compare::write(&report, &cfg.out)?;
    println!("\n{}", compare::summary_table(&report));
    println!(
        "finished in {:.0}s; wrote {}",
        report.wall_seconds,
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The command line as a user can rerun it: `wgtrain` for the binary's path, arguments quoted where a
/// shell would split them.
fn reproduce_command() -> String {
    std::iter::once("wgtrain".to_string())
        .chain(std::env::args().skip(1).map(|a| {
            if a.is_empty()
                || a.contains(|c: char| c.is_whitespace() || "'\"$;&|<>()*?".contains(c))
            {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}
