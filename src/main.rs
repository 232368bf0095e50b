//! `wgtrain` binary: parse the command line, run the command, print errors on one line with an exit code
//! (2: bad usage or input, 1: runtime failure).

use clap::{CommandFactory, FromArgMatches};
use std::time::Instant;
use wgtrain::cli::{Cli, Command};

fn main() {
    let start = Instant::now();
    let matches = Cli::command().get_matches();
    let mut args = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `train --resume` refuses typed flags that contradict the stored run, so it must know which were typed.
    if let (Command::Train(t), Some(("train", m))) = (&mut args.command, matches.subcommand()) {
        t.note_explicit(m);
    }
    let result: anyhow::Result<()> = match &args.command {
        Command::Train(a) => wgtrain::commands::run_train(a, start).map_err(Into::into),
        Command::Eval(a) => wgtrain::commands::run_eval(a).map_err(Into::into),
        Command::Devices(a) => wgtrain::commands::run_devices(a).map_err(Into::into),
        Command::Compare(a) => wgtrain::commands::run_compare(a).map_err(Into::into),
        Command::Bench(a) => wgtrain::commands::run_bench(a).map_err(Into::into),
        Command::Summary(a) => wgtrain::commands::run_summary(a).map_err(Into::into),
        Command::Predict(a) => wgtrain::commands::run_predict(a).map_err(Into::into),
        Command::Export(a) => wgtrain::commands::run_export(a).map_err(Into::into),
    };
    if let Err(e) = result {
        let code = e
            .downcast_ref::<wgtrain::Error>()
            .map(|e| e.exit_code())
            .unwrap_or(1);
        eprintln!("error: {e}");
        std::process::exit(code);
    }
}
