//! The CPU executor's split evaluation (one part of the batch per thread for graphs of row-wise ops,
//! `nn::cpu::CpuExecutor::forward_split`) gives every row the logits it gets on its own, for a plain
//! mlp and for mlp-bn's folded evaluation graph, at a batch that splits unevenly.

mod common;

use wgtrain::data::ImageShape;
use wgtrain::device::Device;
use wgtrain::models;
use wgtrain::nn::{OptimConfig, Weights};

#[test]
fn split_evaluation_matches_row_by_row_logits() {
    assert!(
        rayon::current_num_threads() >= 2 || std::env::var_os("CI").is_none(),
        "the split needs two threads; CI machines have them"
    );
    let shape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    for name in ["mlp", "mlp-bn"] {
        let model = models::build(Some(name), None, shape, 10).unwrap();
        let weights = Weights {
            params: model.init_params(3),
            state: model.init_state(),
        };
        let (m, w) = model.for_inference(&weights).unwrap();
        let batch = 67; // parts of 34 and 33 rows on two threads
        let x = common::random(batch * m.input_len(), 11);
        let mut exec = Device::Cpu
            .executor(&m, &w.params, OptimConfig::adam(1e-3), batch)
            .unwrap();
        exec.set_state(&w.state).unwrap();
        let all = exec.logits(&x).unwrap();
        for r in 0..batch {
            let one = exec
                .logits(&x[r * m.input_len()..(r + 1) * m.input_len()])
                .unwrap();
            for (c, (&a, &b)) in all[r * 10..(r + 1) * 10].iter().zip(&one).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{name} row {r} class {c}: {a} vs {b}"
                );
            }
        }
    }
}
