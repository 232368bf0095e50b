//! Short training runs on the embedded Fashion-MNIST subset (10,000 train / 2,000 test) reach a stated
//! accuracy on both devices; the CPU is bit-for-bit deterministic; GPU and CPU runs agree.

mod common;

use wgtrain::data::{self, DataChoice, DataSplit};
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::train::{train, EpochRecord, TrainConfig};
use wgtrain::Device;

fn run(
    device: &Device,
    data: &DataSplit,
    epochs: usize,
    seed: u64,
) -> (Vec<EpochRecord>, Vec<f32>) {
    run_model("mlp", device, data, epochs, seed)
}

fn run_model(
    name: &str,
    device: &Device,
    data: &DataSplit,
    epochs: usize,
    seed: u64,
) -> (Vec<EpochRecord>, Vec<f32>) {
    let model = models::build(Some(name), None, data.train.shape, data.num_classes).unwrap();
    let cfg = TrainConfig {
        epochs,
        batch_size: 64,
        seed,
        eval_batch_size: 500,
        progress: false,
        start_epoch: 0,
        lr_schedule: None,
        early_stop: None,
        best_val: None,
        augment: None,
        recalibrate_bn: None,
        test_every_epoch: true,
    };
    let params = model.init_params(seed);
    let mut exec = device
        .executor(&model, &params, OptimConfig::adam(1e-3), cfg.max_batch())
        .unwrap();
    let out = train(
        &mut *exec,
        &data.train,
        &data.test,
        &data.normalization,
        &cfg,
        |_, _| Ok(()),
    )
    .unwrap();
    (out.epochs, exec.params().unwrap())
}

fn embedded(train_size: Option<usize>) -> DataSplit {
    data::load(
        &DataChoice::Embedded,
        &data::LoadOptions {
            train_size,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn mlp_on_cpu_reaches_82_percent_in_two_epochs() {
    let data = embedded(None);
    let (epochs, _) = run(&Device::Cpu, &data, 2, 0);
    let acc = epochs.last().unwrap().test_accuracy;
    // Measured 84.35 % (seed 0); PyTorch's recipe on the same 10k images lands in the same place.
    assert!(acc >= 0.82, "test accuracy {acc}");
    assert!(epochs[1].train_loss < epochs[0].train_loss);
}

#[test]
fn cpu_training_is_bit_identical_for_a_seed() {
    let data = embedded(Some(2000));
    let (e1, p1) = run(&Device::Cpu, &data, 1, 7);
    let (e2, p2) = run(&Device::Cpu, &data, 1, 7);
    assert_eq!(p1, p2, "same seed, different weights");
    assert_eq!(e1[0].train_loss, e2[0].train_loss);
    let (_, p3) = run(&Device::Cpu, &data, 1, 8);
    assert_ne!(p1, p3, "different seeds gave the same weights");
}

#[test]
fn mlp_on_gpu_reaches_80_percent_in_one_epoch_and_matches_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let data = embedded(None);
    let (gpu, _) = run(&Device::Gpu(ctx), &data, 1, 0);
    let (cpu, _) = run(&Device::Cpu, &data, 1, 0);
    let (g, c) = (gpu[0].test_accuracy, cpu[0].test_accuracy);
    assert!(g >= 0.80, "gpu test accuracy {g}");
    assert!(
        (g - c).abs() <= 0.005,
        "gpu {g} vs cpu {c}: more than 0.5 points apart"
    );
    assert!((gpu[0].train_loss - cpu[0].train_loss).abs() < 0.01);
}

#[test]
fn cnn_and_lenet5_on_cpu_learn_in_one_epoch() {
    let data = embedded(None);
    // Measured (seed 0, 10k images, 1 epoch): cnn 82.35 %, lenet5 73.95 %.
    for (name, floor) in [("cnn", 0.80), ("lenet5", 0.70)] {
        let (epochs, _) = run_model(name, &Device::Cpu, &data, 1, 0);
        let acc = epochs[0].test_accuracy;
        assert!(acc >= floor, "{name}: test accuracy {acc}");
    }
}

#[test]
fn cnn_on_gpu_learns_and_matches_cpu() {
    let Some(ctx) = common::gpu() else { return };
    let data = embedded(Some(1000));
    let (gpu, _) = run_model("cnn", &Device::Gpu(ctx), &data, 1, 0);
    let (cpu, _) = run_model("cnn", &Device::Cpu, &data, 1, 0);
    let (g, c) = (gpu[0].test_accuracy, cpu[0].test_accuracy);
    assert!(g >= 0.6, "gpu cnn test accuracy {g}");
    assert!((g - c).abs() <= 0.015, "gpu {g} vs cpu {c}");
}

#[test]
fn a_step_schedule_that_zeroes_the_rate_freezes_the_weights_after_epoch_one() {
    use wgtrain::train::LrSchedule;
    let data = embedded(Some(500));
    let model = models::build(Some("mlp"), None, data.train.shape, data.num_classes).unwrap();
    let run = |epochs: usize, schedule: Option<(LrSchedule, f32)>| {
        let cfg = TrainConfig {
            epochs,
            batch_size: 50,
            seed: 3,
            eval_batch_size: 500,
            progress: false,
            start_epoch: 0,
            lr_schedule: schedule,
            early_stop: None,
            best_val: None,
            augment: None,
            recalibrate_bn: None,
            test_every_epoch: true,
        };
        let mut exec = Device::Cpu
            .executor(
                &model,
                &model.init_params(3),
                OptimConfig::sgd(0.05, 0.0),
                cfg.max_batch(),
            )
            .unwrap();
        train(
            &mut *exec,
            &data.train,
            &data.test,
            &data.normalization,
            &cfg,
            |_, _| Ok(()),
        )
        .unwrap();
        exec.params().unwrap()
    };
    let one = run(1, None);
    let frozen = run(
        3,
        Some((
            LrSchedule::Step {
                every: 1,
                gamma: 0.0,
            },
            0.05,
        )),
    );
    let constant = run(3, Some((LrSchedule::Constant, 0.05)));
    assert_eq!(
        one, frozen,
        "epochs 2-3 ran at lr 0 and must not move the weights"
    );
    assert_ne!(one, constant);
}

#[test]
fn augmentation_is_seeded_and_changes_training() {
    use wgtrain::data::augment::Augment;
    let data = embedded(Some(400));
    let model = models::build(Some("mlp"), None, data.train.shape, data.num_classes).unwrap();
    let run = |augment: Option<Augment>| {
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 50,
            seed: 9,
            eval_batch_size: 500,
            progress: false,
            start_epoch: 0,
            lr_schedule: None,
            early_stop: None,
            best_val: None,
            augment,
            recalibrate_bn: None,
            test_every_epoch: true,
        };
        let mut exec = Device::Cpu
            .executor(
                &model,
                &model.init_params(9),
                OptimConfig::adam(1e-3),
                cfg.max_batch(),
            )
            .unwrap();
        train(
            &mut *exec,
            &data.train,
            &data.test,
            &data.normalization,
            &cfg,
            |_, _| Ok(()),
        )
        .unwrap();
        exec.params().unwrap()
    };
    let aug = Some(Augment {
        shift: 2,
        flip: true,
    });
    assert_eq!(run(aug), run(aug), "same seed, different augmented runs");
    assert_ne!(run(aug), run(None));
    assert_eq!(
        run(Some(Augment::default())),
        run(None),
        "identity augmentation changed something"
    );
}
