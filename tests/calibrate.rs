//! BatchNorm recalibration (`train --recalibrate-bn`, every BatchNorm net in `compare`): the statistics
//! are the mean of the batch statistics over the set, on the CPU and the GPU; they repair running
//! statistics that lag the weights; parameters never change; a model without BatchNorm has no layout.

mod common;
use common::*;
use wgtrain::calibrate::{recalibrate_bn, BnLayout};
use wgtrain::data::{Batcher, DataChoice, Dataset, ImageShape, Normalization};
use wgtrain::device::Device;
use wgtrain::models;
use wgtrain::nn::OptimConfig;

fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if let Some(ctx) = gpu() {
        d.push(Device::Gpu(ctx));
    }
    d
}

/// `flatten,bn,fc2` on two-pixel images: the BatchNorm sees the normalised pixels themselves, so the
/// expected statistics are computed here from the batches, independently of the op.
#[test]
fn recalibrated_statistics_are_the_mean_of_the_batch_statistics() {
    let shape = ImageShape {
        channels: 1,
        height: 1,
        width: 2,
    };
    let ds = Dataset {
        shape,
        images: vec![10, 200, 30, 180, 90, 20, 250, 0, 60, 60, 7, 99],
        labels: vec![0, 1, 0, 1, 0, 1],
    };
    let norm = Normalization {
        mean: vec![0.3],
        std: vec![0.25],
    };
    let model = models::build(None, Some("flatten,bn,fc2"), shape, 2).unwrap();
    let layout = BnLayout::of(&model).expect("the model has a BatchNorm");
    // Batches of 4: [0..4] and [4..6]; a 1-image remainder would be skipped, here there is none.
    let batcher = Batcher::new(&norm, shape);
    let mut x = vec![0f32; 12];
    let mut y = vec![0u32; 6];
    batcher.fill(&ds, &[0, 1, 2, 3, 4, 5], &mut x, &mut y);
    let mut want_mean = [0f64; 2];
    let mut want_var = [0f64; 2];
    for (lo, hi) in [(0usize, 4usize), (4, 6)] {
        for f in 0..2 {
            let v: Vec<f64> = (lo..hi).map(|i| x[2 * i + f] as f64).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (v.len() - 1) as f64;
            want_mean[f] += m / 2.0;
            want_var[f] += var / 2.0;
        }
    }
    for dev in devices() {
        let params = model.init_params(3);
        let mut exec = dev
            .executor(&model, &params, OptimConfig::adam(1e-3), 4)
            .unwrap();
        // Stale statistics far from the data.
        let off: Vec<usize> = model.state.iter().map(|t| t.offset).collect();
        let (mo, vo, co) = (off[0], off[1], off[2]);
        let mut stale = model.init_state();
        stale[mo..mo + 2].copy_from_slice(&[5.0, -5.0]);
        stale[vo..vo + 2].copy_from_slice(&[40.0, 40.0]);
        stale[co] = 123.0;
        exec.set_state(&stale).unwrap();
        let used = recalibrate_bn(&mut *exec, &layout, &ds, &norm, 4).unwrap();
        assert_eq!(used, 2, "{}", dev.kind());
        let s = exec.state().unwrap();
        for f in 0..2 {
            assert!(
                (s[mo + f] as f64 - want_mean[f]).abs() < 1e-5,
                "{}: mean {f}: {} vs {}",
                dev.kind(),
                s[mo + f],
                want_mean[f]
            );
            assert!(
                (s[vo + f] as f64 - want_var[f]).abs() < 1e-4 * want_var[f].max(1.0),
                "{}: var {f}: {} vs {}",
                dev.kind(),
                s[vo + f],
                want_var[f]
            );
        }
        assert_eq!(s[co], 2.0, "num_batches_tracked = batches used");
        assert_eq!(exec.params().unwrap(), params, "parameters untouched");
    }
    let mlp = models::build(
        Some("mlp"),
        None,
        ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        },
        10,
    )
    .unwrap();
    assert!(BnLayout::of(&mlp).is_none());
}

/// A trained BatchNorm net with running statistics knocked far off (the failure the compare protocol
/// guards against: statistics lagging the weights) scores near chance in evaluation mode; recalibrated
/// over the training set it is back within two points of its accuracy with good statistics.
#[test]
fn recalibration_repairs_statistics_that_lag_the_weights() {
    let mut data = wgtrain::data::load(&DataChoice::Embedded, &Default::default()).unwrap();
    data.train.truncate(2000);
    data.test.truncate(1000);
    let model = models::build(
        None,
        Some("conv3x3x8p1nb,bn,relu,maxpool2,flatten,fc32,bn,relu,fc10"),
        data.train.shape,
        10,
    )
    .unwrap();
    let layout = BnLayout::of(&model).unwrap();
    for dev in devices() {
        let params = model.init_params(1);
        let cfg = wgtrain::train::TrainConfig {
            epochs: 2,
            batch_size: 64,
            seed: 1,
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
        let mut exec = dev
            .executor(&model, &params, OptimConfig::adam(3e-3), 500)
            .unwrap();
        let out = wgtrain::train::train(
            &mut *exec,
            &data.train,
            &data.test,
            &data.normalization,
            &cfg,
            |_, _| Ok(()),
        )
        .unwrap();
        let good = out.epochs.last().unwrap().test_accuracy;
        assert!(good > 0.7, "{}: trained to {good}", dev.kind());
        let acc = |exec: &mut dyn wgtrain::nn::Executor| {
            let b = Batcher::new(&data.normalization, data.test.shape);
            wgtrain::train::evaluate(exec, &data.test, &b, 500)
                .unwrap()
                .accuracy()
        };
        let mut stale = exec.state().unwrap();
        for t in &model.state {
            let r = t.offset..t.offset + t.len();
            if t.name.ends_with("running_mean") {
                stale[r].iter_mut().for_each(|v| *v += 3.0);
            } else if t.name.ends_with("running_var") {
                stale[r].iter_mut().for_each(|v| *v *= 50.0);
            }
        }
        exec.set_state(&stale).unwrap();
        let broken = acc(&mut *exec);
        assert!(broken < good - 0.2, "{}: {broken} vs {good}", dev.kind());
        let before = exec.params().unwrap();
        recalibrate_bn(&mut *exec, &layout, &data.train, &data.normalization, 64).unwrap();
        let repaired = acc(&mut *exec);
        assert!(
            (repaired - good).abs() < 0.02,
            "{}: recalibrated {repaired} vs {good}",
            dev.kind()
        );
        assert_eq!(exec.params().unwrap(), before);
    }
}

/// Evaluating the test set after the last epoch only (what compare's runs other than the base run do)
/// gives the same final numbers as evaluating after every epoch, BatchNorm recalibration included: the
/// statistics do not steer training. The epochs not evaluated carry NaN, never a stale number.
#[test]
fn testing_only_after_the_last_epoch_changes_nothing_but_the_cost() {
    let mut data = wgtrain::data::load(&DataChoice::Embedded, &Default::default()).unwrap();
    data.train.truncate(1000);
    data.test.truncate(500);
    let model = models::build(Some("mlp-bn"), None, data.train.shape, 10).unwrap();
    let run = |every: bool| {
        let cfg = wgtrain::train::TrainConfig {
            epochs: 3,
            batch_size: 64,
            seed: 2,
            eval_batch_size: 500,
            progress: false,
            start_epoch: 0,
            lr_schedule: None,
            early_stop: None,
            best_val: None,
            augment: None,
            recalibrate_bn: BnLayout::of(&model),
            test_every_epoch: every,
        };
        let mut exec = Device::Cpu
            .executor(&model, &model.init_params(2), OptimConfig::adam(1e-3), 500)
            .unwrap();
        let out = wgtrain::train::train(
            &mut *exec,
            &data.train,
            &data.test,
            &data.normalization,
            &cfg,
            |_, _| Ok(()),
        )
        .unwrap();
        (out.epochs, exec.params().unwrap(), exec.state().unwrap())
    };
    let (every, p_every, s_every) = run(true);
    let (last, p_last, s_last) = run(false);
    assert_eq!(p_every, p_last);
    assert_eq!(s_every, s_last);
    let (a, b) = (every.last().unwrap(), last.last().unwrap());
    assert_eq!(
        (a.test_loss, a.test_accuracy),
        (b.test_loss, b.test_accuracy)
    );
    assert_eq!(a.train_loss, b.train_loss);
    assert!(last[..2].iter().all(|e| e.test_accuracy.is_nan()));
    assert!(every.iter().all(|e| e.test_accuracy.is_finite()));
}
