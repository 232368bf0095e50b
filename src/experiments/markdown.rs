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

/// Rows of one per-net table: the net's name and family, then one cell per column.
fn net_rows(s: &mut String, r: &Report, cells: &dyn Fn(&[SeedRecord]) -> Vec<String>) {
    for n in &r.runs {
        let _ = writeln!(
            s,
            "| {} ({}) | {} |",
            n.net,
            n.family.as_str(),
            cells(&n.seeds).join(" | ")
        );
    }
}

fn header(s: &mut String, first: &str, cols: &[String]) {
    let _ = writeln!(s, "| {first} | {} |", cols.join(" | "));
    let _ = writeln!(s, "|---|{}", "---|".repeat(cols.len()));
}

fn parameters_tables(s: &mut String, r: &Report) {
    for n in &r.config.nets {
        let v = &n.costs;
        let _ = writeln!(
            s,
            "**{}** ({}) `{}`: {} parameters, {:.3} MFLOP forward and {:.3} MFLOP per training step per image.\n",
            n.label,
            n.family.as_str(),
            n.arch,
            n.params,
            v["forward_flops_per_image"].as_f64().unwrap_or(0.0) / 1e6,
            v["train_flops_per_image"].as_f64().unwrap_or(0.0) / 1e6
        );
        let _ = writeln!(
            s,
            "| layer | parameters | uses of each weight per image | forward FLOPs |\n|---|---|---|---|"
        );
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

fn throughput_table(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "| model | image | device | adapter | train img/s | inference img/s | warm-up s |\n|---|---|---|---|---|---|---|"
    );
    for t in &r.throughput {
        let _ = writeln!(
            s,
            "| {} | {size}x{size} | {} | {}{} | {:.0} | {:.0} | {:.2} |",
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
            t.warmup_seconds,
            size = t.image_size
        );
    }
    let _ = writeln!(
        s,
        "\nThroughput is timed after one warm-up step, with the device synchronised, at batch {}; timings vary between runs and machines, accuracies do not (on the CPU, the same seed gives the same numbers).",
        r.config.batch_size
    );
}

/// The per-net table of claim `id`.
fn claim_table(s: &mut String, r: &Report, id: &str) {
    let first = &r.runs[0].seeds[0];
    match id {
        "parameters" => parameters_tables(s, r),
        "accuracy" => {
            header(
                s,
                "net",
                &["test".into(), "train".into(), "train - test".into()],
            );
            net_rows(s, r, &|rec| {
                vec![
                    col(rec, |x| x.test_accuracy),
                    col(rec, |x| x.train_accuracy),
                    col(rec, |x| x.train_accuracy - x.test_accuracy),
                ]
            });
        }
        "data_efficiency" | "contradiction_data" => {
            let cols: Vec<String> = first
                .data_efficiency
                .iter()
                .map(|d| format!("{} images ({} epochs)", d.0, d.1))
                .collect();
            header(s, "net", &cols);
            net_rows(s, r, &|rec| {
                (0..cols.len())
                    .map(|i| col(rec, |x| x.data_efficiency[i].2))
                    .collect()
            });
        }
        "spatial_structure" => {
            header(
                s,
                "net",
                &[
                    "original pixels".into(),
                    "permuted pixels".into(),
                    "drop (points)".into(),
                ],
            );
            net_rows(s, r, &|rec| {
                vec![
                    col(rec, |x| x.test_accuracy),
                    col(rec, |x| x.permuted_test_accuracy),
                    col(rec, |x| x.test_accuracy - x.permuted_test_accuracy),
                ]
            });
        }
        "translation" => {
            let cols: Vec<String> = first
                .shifted
                .iter()
                .map(|d| format!("{} px", d.0))
                .collect();
            header(s, "net", &cols);
            net_rows(s, r, &|rec| {
                (0..cols.len())
                    .map(|i| col(rec, |x| x.shifted[i].1))
                    .collect()
            });
        }
        "transfer" => {
            let t = |x: &SeedRecord, f: fn(&super::protocol::TransferRecord) -> f64| {
                x.transfer.as_ref().map_or(0.0, f)
            };
            header(
                s,
                "net",
                &[
                    "pre-training (old classes)".into(),
                    "body frozen".into(),
                    "fine-tuned".into(),
                    "from scratch".into(),
                ],
            );
            net_rows(s, r, &|rec| {
                vec![
                    col(rec, |x| t(x, |y| y.pretrain_accuracy)),
                    col(rec, |x| t(x, |y| y.frozen_body)),
                    col(rec, |x| t(x, |y| y.fine_tuned)),
                    col(rec, |x| t(x, |y| y.scratch)),
                ]
            });
        }
        "compute_cost" => throughput_table(s, r),
        "hierarchy" => {
            let deepest = r
                .runs
                .iter()
                .map(|n| n.seeds[0].probes.len())
                .max()
                .unwrap_or(0);
            let cols: Vec<String> = (0..deepest)
                .map(|d| {
                    if d == 0 {
                        "pixels".into()
                    } else {
                        format!("stage {d}")
                    }
                })
                .collect();
            header(s, "net", &cols);
            net_rows(s, r, &|rec| {
                (0..deepest)
                    .map(|i| match rec[0].probes.get(i) {
                        Some(p) => format!(
                            "{} (after {}, {} features)",
                            col(rec, |x| x.probes[i].test_accuracy),
                            p.after,
                            p.features
                        ),
                        None => "—".into(),
                    })
                    .collect()
            });
            let p = &r.config.protocol;
            let _ = writeln!(
                s,
                "\nEach probe is a new linear layer trained for {} epochs on the first {} training images with everything before it frozen at the base run's weights; test accuracy on the whole test set.",
                p.probe_epochs, p.probe_train
            );
        }
        "contradiction_compute" => {
            let cols: Vec<String> = first
                .budget
                .iter()
                .map(|p| format!("{} s", p.budget_seconds))
                .collect();
            header(s, "net", &cols);
            net_rows(s, r, &|rec| {
                (0..cols.len())
                    .map(|i| {
                        let epochs = mean_sd(
                            &rec.iter()
                                .map(|x| x.budget[i].images as f64)
                                .collect::<Vec<_>>(),
                        )
                        .0 / r.config.train_images.max(1) as f64;
                        format!(
                            "{} ({epochs:.2} epochs)",
                            col(rec, |x| x.budget[i].test_accuracy)
                        )
                    })
                    .collect()
            });
            let _ = writeln!(
                s,
                "\nTest accuracy after each many seconds of training on {} (the clock stopped for evaluation), each net from scratch on the whole training set with the protocol's optimiser and batch, and how many epochs that was.",
                r.config.device
            );
        }
        "scale_parameters" | "scale_accuracy" | "scale_compute" => {
            let cols: Vec<String> = first
                .canvas
                .iter()
                .map(|c| format!("{0}x{0}", c.size))
                .collect();
            header(s, "net", &cols);
            net_rows(s, r, &|rec| {
                (0..cols.len())
                    .map(|i| {
                        let c = &rec[0].canvas[i];
                        match id {
                            "scale_parameters" => c.params.to_string(),
                            "scale_accuracy" => col(rec, |x| x.canvas[i].test_accuracy),
                            _ => {
                                let (m, sd) = mean_sd(
                                    &rec.iter()
                                        .map(|x| x.canvas[i].train_images_per_sec)
                                        .collect::<Vec<_>>(),
                                );
                                format!(
                                    "{:.2} MFLOP, {m:.0} ± {sd:.0} img/s",
                                    c.train_flops_per_image as f64 / 1e6
                                )
                            }
                        }
                    })
                    .collect()
            });
            if id == "scale_accuracy" {
                let p = &r.config.protocol;
                let _ = writeln!(
                    s,
                    "\nEach image is placed at a seeded random position on the canvas (zero elsewhere), training and test images alike; the first {} training and {} test images, {} epochs, every net retrained from scratch per size.",
                    p.canvas_train, p.canvas_test, p.canvas_epochs
                );
            }
        }
        "recipe" => {
            header(s, "net", &["test".into(), "train".into()]);
            net_rows(s, r, &|rec| {
                vec![
                    col(rec, |x| x.test_accuracy),
                    col(rec, |x| x.train_accuracy),
                ]
            });
            let g = &r.strong_ann;
            for c in &g.candidates {
                let chosen = if c.augment == g.augment {
                    " (chosen)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "| strong ANN: {}, augmentation {}{chosen} | {} | {} |",
                    g.net,
                    c.augment,
                    ms(&c.test_accuracy),
                    ms(&c.train_accuracy)
                );
            }
            let _ = writeln!(
                s,
                "\nThe strong ANN is trained once per candidate augmentation (`shift:N`: random shifts of up to N pixels, `flip`: left-right flips of the training images; {} epochs, the same optimiser and batch) and the candidate with the best mean test accuracy is the one judged, a choice that can only favour the ANN; every other run sees the images as stored. Training accuracy is, for every net, the running accuracy over the last epoch's (for an augmented candidate, augmented) batches in training mode.",
                g.epochs
            );
        }
        _ => {}
    }
}

pub fn render(r: &Report) -> String {
    let c = &r.config;
    let mut s = String::new();
    let names: Vec<&str> = c.nets.iter().map(|n| n.label.as_str()).collect();
    let _ = writeln!(s, "# ANN vs CNN: {}\n", names.join(", "));
    let _ = writeln!(
        s,
        "Measured by wgtrain {} on {} (UTC), device {} ({}), in {:.0} s. Accuracies are % on the test set, mean ± sd over {} seed(s).\n",
        c.wgtrain_version, c.date_utc, c.device, c.adapter, r.wall_seconds, c.protocol.seeds.len()
    );
    let _ = writeln!(s, "| net | family | parameters | architecture | BatchNorm statistics |\n|---|---|---|---|---|");
    for n in &c.nets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` | {} |",
            n.label,
            n.family.as_str(),
            n.params,
            n.arch,
            if n.batchnorm_recalibrated {
                "recomputed over the training set each epoch"
            } else {
                "none"
            }
        );
    }
    let _ = writeln!(s, "\n| setting | value |\n|---|---|");
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
    let _ = writeln!(s, "| verdict rule | {} |", c.verdict_rule);
    let _ = writeln!(s, "| pairs | {} |", c.pairing_rule);
    let _ = writeln!(s, "| BatchNorm | {} |\n", c.batchnorm_protocol);
    let ids = super::compare::claim_ids(r);
    let _ = writeln!(s, "## Summary\n");
    let cols: Vec<String> = r.pairs.iter().map(|p| p.label()).collect();
    header(&mut s, "claim", &cols);
    for id in &ids {
        let title = r
            .claims
            .iter()
            .find(|cl| cl.id == *id)
            .map_or(id.to_string(), |cl| cl.title.clone());
        let cells: Vec<String> = r
            .pairs
            .iter()
            .map(|p| {
                super::compare::claim(r, id, p)
                    .map_or("—".into(), |cl| format!("**{}**", cl.verdict.as_str()))
            })
            .collect();
        let _ = writeln!(s, "| {title} | {} |", cells.join(" | "));
    }
    for (i, id) in ids.iter().enumerate() {
        let Some(first) = r.claims.iter().find(|cl| cl.id == *id) else {
            continue;
        };
        let _ = writeln!(s, "\n## {}. {}\n", i + 1, first.title);
        let _ = writeln!(s, "Claim: {}.\n\nRule: {}.\n", first.statement, first.rule);
        for p in &r.pairs {
            if let Some(cl) = super::compare::claim(r, id, p) {
                let _ = writeln!(
                    s,
                    "- **{}**: **{}** — {}",
                    p.label(),
                    cl.verdict.as_str(),
                    cl.evidence
                );
            }
        }
        s.push('\n');
        claim_table(&mut s, r, id);
        if let Some(p) = &first.plot {
            let _ = writeln!(s, "\n![{}]({p})", first.title);
        }
    }
    s
}
