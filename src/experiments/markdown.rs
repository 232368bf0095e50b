//! report.md: the same numbers as report.json, for people.

use super::compare::Report;
use super::protocol::SeedRecord;
use super::stats::mean_sd;
use std::fmt::Write;

fn ms(values: &[f64]) -> String {
    let (m, s) = mean_sd(values);
    format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
}

fn col(r: &[SeedRecord], f: impl Fn(&SeedRecord) -> f64) -> String {
    ms(&r.iter().map(f).collect::<Vec<_>>())
}

pub fn render(r: &Report) -> String {
    let c = &r.config;
    let (ann, cnn) = (&r.runs.ann, &r.runs.cnn);
    let (an, cn) = (c.ann.label(), c.cnn.label());
    let mut s = String::new();
    let _ = writeln!(s, "# ANN vs CNN: {an} vs {cn}\n");
    let _ = writeln!(
        s,
        "Measured by wgtrain {} on {} (UTC), device {} ({}), in {:.0} s. Accuracies are % on the test set, mean ± sd over {} seed(s).\n",
        c.wgtrain_version, c.date_utc, c.device, c.adapter, r.wall_seconds, c.protocol.seeds.len()
    );
    let _ = writeln!(s, "| setting | value |\n|---|---|");
    let _ = writeln!(
        s,
        "| data | {} ({}), {} train / {} test images, {} classes |",
        c.data.name, c.data.location, c.train_images, c.test_images, c.classes
    );
    let _ = writeln!(
        s,
        "| recipe | {} lr {}, batch {}, {} epochs, seeds {:?} |",
        c.optimizer, c.lr, c.batch_size, c.protocol.epochs, c.protocol.seeds
    );
    let _ = writeln!(s, "| reproduce | `{}` |", c.command);
    let _ = writeln!(s, "| verdict rule | {} |\n", c.verdict_rule);
    let _ = writeln!(
        s,
        "## Summary\n\n| claim | verdict | evidence |\n|---|---|---|"
    );
    for cl in &r.claims {
        let _ = writeln!(
            s,
            "| {} | **{}** | {} |",
            cl.title,
            cl.verdict.as_str(),
            cl.evidence
        );
    }
    for (i, cl) in r.claims.iter().enumerate() {
        let _ = writeln!(s, "\n## {}. {}\n", i + 1, cl.title);
        let _ = writeln!(
            s,
            "Claim: {}.\n\nVerdict: **{}** — {}\n\nRule: {}.\n",
            cl.statement,
            cl.verdict.as_str(),
            cl.evidence,
            cl.rule
        );
        match cl.id.as_str() {
            "parameters" => {
                for side in ["ann", "cnn"] {
                    let v = &cl.values[side];
                    let _ = writeln!(s, "**{}** `{}`: {} parameters, {:.3} MFLOP forward and {:.3} MFLOP per training step per image.\n", v["model"].as_str().unwrap_or(""), v["arch"].as_str().unwrap_or(""), v["params"], v["forward_flops_per_image"].as_f64().unwrap_or(0.0) / 1e6, v["train_flops_per_image"].as_f64().unwrap_or(0.0) / 1e6);
                    let _ = writeln!(s, "| layer | parameters | uses of each weight per image | forward FLOPs |\n|---|---|---|---|");
                    for l in v["layers"].as_array().into_iter().flatten() {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | {} |",
                            l["layer"].as_str().unwrap_or(""),
                            l["params"],
                            l["uses_per_weight_per_image"],
                            l["forward_flops"]
                        );
                    }
                    s.push('\n');
                }
            }
            "accuracy" => {
                let _ = writeln!(
                    s,
                    "| net | test | train | train - test |\n|---|---|---|---|"
                );
                for (name, rec) in [(&an, ann), (&cn, cnn)] {
                    let _ = writeln!(
                        s,
                        "| {name} | {} | {} | {} |",
                        col(rec, |x| x.test_accuracy),
                        col(rec, |x| x.train_accuracy),
                        col(rec, |x| x.train_accuracy - x.test_accuracy)
                    );
                }
            }
            "data_efficiency" => {
                let _ = writeln!(
                    s,
                    "| training images | epochs | {an} | {cn} |\n|---|---|---|---|"
                );
                for (i, d) in ann[0].data_efficiency.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} |",
                        d.0,
                        d.1,
                        col(ann, |x| x.data_efficiency[i].2),
                        col(cnn, |x| x.data_efficiency[i].2)
                    );
                }
            }
            "spatial_structure" => {
                let _ = writeln!(s, "| net | original pixels | permuted pixels | drop (points) |\n|---|---|---|---|");
                for (name, rec) in [(&an, ann), (&cn, cnn)] {
                    let _ = writeln!(
                        s,
                        "| {name} | {} | {} | {} |",
                        col(rec, |x| x.test_accuracy),
                        col(rec, |x| x.permuted_test_accuracy),
                        col(rec, |x| x.test_accuracy - x.permuted_test_accuracy)
                    );
                }
            }
            "translation" => {
                let _ = writeln!(s, "| shift (px) | {an} | {cn} |\n|---|---|---|");
                for (i, d) in ann[0].shifted.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} |",
                        d.0,
                        col(ann, |x| x.shifted[i].1),
                        col(cnn, |x| x.shifted[i].1)
                    );
                }
            }
            "transfer" => {
                let t = |x: &SeedRecord, f: fn(&super::protocol::TransferRecord) -> f64| {
                    x.transfer.as_ref().map_or(0.0, f)
                };
                let _ = writeln!(s, "| net | pre-training (old classes) | body frozen | fine-tuned | from scratch |\n|---|---|---|---|---|");
                for (name, rec) in [(&an, ann), (&cn, cnn)] {
                    let _ = writeln!(
                        s,
                        "| {name} | {} | {} | {} | {} |",
                        col(rec, |x| t(x, |y| y.pretrain_accuracy)),
                        col(rec, |x| t(x, |y| y.frozen_body)),
                        col(rec, |x| t(x, |y| y.fine_tuned)),
                        col(rec, |x| t(x, |y| y.scratch))
                    );
                }
            }
            "compute_cost" => {
                let _ = writeln!(s, "| model | device | adapter | train img/s | inference img/s | warm-up s |\n|---|---|---|---|---|---|");
                for t in &r.throughput {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {}{} | {:.0} | {:.0} | {:.2} |",
                        t.model,
                        t.device,
                        t.adapter,
                        if t.software_adapter {
                            " — software rasteriser, not a GPU"
                        } else {
                            ""
                        },
                        t.train_images_per_sec,
                        t.inference_images_per_sec,
                        t.warmup_seconds
                    );
                }
                let _ = writeln!(s, "\nThroughput is timed after one warm-up step, with the device synchronised, at batch {}; timings vary between runs and machines, accuracies do not (on the CPU, the same seed gives the same numbers).", c.batch_size);
            }
            _ => {}
        }
        if let Some(p) = &cl.plot {
            let _ = writeln!(s, "\n![{}]({p})", cl.title);
        }
    }
    s
}
