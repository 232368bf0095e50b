//! The measurements behind the claims: for each seed and each of the two nets, a base run (learning
//! curves, translation robustness, throughput), a run on pixel-permuted data, runs on smaller training
//! sets, and the transfer protocol. Everything is recorded; the claims are computed from these records.

use super::runner::{accuracy, train_run, NetChoice, Recipe, Run};
use super::transforms::{permute_pixels, pixel_permutation, select_classes, shift};
use crate::data::{DataSplit, Dataset};
use crate::device::Device;
use crate::error::Result;
use crate::train::EpochRecord;
use std::time::Instant;

/// What to run. `quick` fits the embedded subset in a few minutes on two CPU cores; `full` is the
/// published-style protocol on the full Fashion-MNIST.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Protocol {
    pub seeds: Vec<u64>,
    /// Epochs of the base and permuted runs (and of transfer pre-training).
    pub epochs: usize,
    /// Data-efficiency points below the full training set: (training images, epochs), each a balanced
    /// subset (the first images/classes of each class), down to 10 images per class.
    pub sizes: Vec<(usize, usize)>,
    /// Test-set shifts in pixels (right and down), applied without retraining.
    pub shifts: Vec<usize>,
    /// Labelled examples per new class in the transfer task, and epochs on them.
    pub transfer_per_class: usize,
    pub transfer_epochs: usize,
    /// The scale claim: canvas sides in pixels (each at least the image side) the images are placed on
    /// at random positions, training and test images used (the first N of each), and epochs.
    pub canvas: Vec<usize>,
    pub canvas_train: usize,
    pub canvas_test: usize,
    pub canvas_epochs: usize,
    /// Training-time budgets in seconds on the experiment's device (the equal-budget comparison);
    /// empty to skip it.
    pub budgets: Vec<f64>,
    /// Linear probes (the hierarchy claim): training images (0 to skip) and epochs of each probe.
    pub probe_train: usize,
    pub probe_epochs: usize,
}

impl Protocol {
    /// Canvas sides of `factors` x the image side (`side` pixels): 28 and 1.5 give 42.
    fn canvas_of(side: usize, factors: &[f64]) -> Vec<usize> {
        factors
            .iter()
            .map(|f| ((side as f64 * f).round() as usize).max(side))
            .collect()
    }

    /// The default protocol for `train_len` training images `side` pixels high/wide.
    pub fn quick(seeds: usize, train_len: usize, side: usize) -> Self {
        Protocol {
            seeds: (0..seeds as u64).collect(),
            epochs: 5,
            sizes: [(100, 50), (1000, 20)]
                .into_iter()
                .filter(|(n, _)| *n < train_len)
                .collect(),
            shifts: vec![1, 2, 3],
            transfer_per_class: 100,
            transfer_epochs: 20,
            canvas: Self::canvas_of(side, &[1.0, 1.5]),
            canvas_train: 2000,
            canvas_test: 1000,
            canvas_epochs: 3,
            budgets: vec![0.5, 2.0],
            probe_train: 1000,
            probe_epochs: 5,
        }
    }

    /// `--full`: more data-efficiency points and canvas sizes up to 4x the image side.
    pub fn full(seeds: usize, train_len: usize, side: usize) -> Self {
        Protocol {
            sizes: [(100, 50), (300, 40), (1000, 20), (3000, 12), (10000, 8)]
                .into_iter()
                .filter(|(n, _)| *n < train_len)
                .collect(),
            canvas: Self::canvas_of(side, &[1.0, 2.0, 3.0, 4.0]),
            canvas_train: 10000,
            canvas_test: 2000,
            canvas_epochs: 3,
            budgets: vec![10.0, 30.0, 100.0],
            probe_train: 10000,
            transfer_epochs: 30,
            ..Protocol::quick(seeds, train_len, side)
        }
    }
}

/// Everything measured for one net and one seed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeedRecord {
    pub seed: u64,
    /// Per-epoch records of the base run on the whole training set.
    pub curves: Vec<EpochRecord>,
    pub test_accuracy: f64,
    pub train_accuracy: f64,
    /// Median training images/s of the base run (this experiment's device).
    pub train_images_per_sec: f64,
    /// Test accuracy on shifted test sets: (pixels, accuracy); pixels 0 is the unshifted test set.
    pub shifted: Vec<(usize, f64)>,
    /// Test accuracy after training and testing on pixel-permuted images.
    pub permuted_test_accuracy: f64,
    /// (training images, epochs, test accuracy), the whole set last.
    pub data_efficiency: Vec<(usize, usize, f64)>,
    pub transfer: Option<TransferRecord>,
    /// The same net trained and tested on translated images on each canvas size (the scale claim).
    pub canvas: Vec<super::scale::CanvasPoint>,
    /// Checkpoints of the equal-budget run, on the protocol's time grid.
    pub budget: Vec<super::budget::BudgetPoint>,
    /// Linear probes on the base run's frozen features, pixels (depth 0) first.
    pub probes: Vec<super::probes::ProbePoint>,
}

/// Test accuracies (on the held-out classes) of the transfer protocol.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TransferRecord {
    /// Accuracy of the pre-trained net on the test images of its own classes.
    pub pretrain_accuracy: f64,
    /// Only the new last layer trained, body frozen.
    pub frozen_body: f64,
    /// All layers fine-tuned from the pre-trained body.
    pub fine_tuned: f64,
    /// Same net, random init, trained on the same small set.
    pub scratch: f64,
    pub new_task_train_images: usize,
}

/// Runs the protocol for one net, printing a line per run through `log`.
pub struct Experiment<'a> {
    pub device: &'a Device,
    pub data: &'a DataSplit,
    pub protocol: &'a Protocol,
    pub recipe: Recipe,
    pub log: &'a mut dyn FnMut(String),
}

impl Experiment<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &mut self,
        what: &str,
        model: &crate::nn::Model,
        init: &[f32],
        optim: crate::nn::OptimConfig,
        train: &Dataset,
        test: &Dataset,
        epochs: usize,
        seed: u64,
    ) -> Result<Run> {
        let norm = self.data.normalization.clone();
        self.run_with(
            what, model, init, optim, train, test, &norm, epochs, seed, false,
        )
    }

    /// [`run`](Self::run) with images normalised by `norm` (data other than the experiment's own), and
    /// the test set evaluated after every epoch when `curve` is set (else after the last one only).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_with(
        &mut self,
        what: &str,
        model: &crate::nn::Model,
        init: &[f32],
        optim: crate::nn::OptimConfig,
        train: &Dataset,
        test: &Dataset,
        norm: &crate::data::Normalization,
        epochs: usize,
        seed: u64,
        curve: bool,
    ) -> Result<Run> {
        let t = Instant::now();
        let run = train_run(
            self.device,
            model,
            init,
            optim,
            &self.recipe,
            train,
            test,
            norm,
            epochs,
            seed,
            curve,
        )?;
        (self.log)(format!(
            "  {what}: {} images x {epochs} epochs, test accuracy {:.2}% ({:.1}s)",
            train.len(),
            100.0 * run.final_test(),
            t.elapsed().as_secs_f64()
        ));
        Ok(run)
    }

    /// All measurements of `net` for `seed`.
    pub fn measure(&mut self, net: &NetChoice, seed: u64) -> Result<SeedRecord> {
        let data = self.data;
        let p = self.protocol;
        let (train, test) = (&data.train, &data.test);
        let model = net.build(train.shape, data.num_classes)?;
        let optim = self.recipe.optim;
        let eval_batch = self.recipe.eval_batch_size;
        let norm = &data.normalization;
        let label = net.label();

        // The base run keeps its learning curve (the plots, time to a target accuracy).
        let mut base = self.run_with(
            &format!("{label} base"),
            &model,
            &model.init_params(seed),
            optim,
            train,
            test,
            norm,
            p.epochs,
            seed,
            true,
        )?;
        let mut shifted = vec![(0, base.final_test())];
        for &s in &p.shifts {
            let acc = accuracy(
                &mut *base.executor,
                &shift(test, s as isize, s as isize),
                norm,
                eval_batch,
            )?;
            shifted.push((s, acc));
        }
        (self.log)(format!(
            "  {label} on shifted test images: {}",
            shifted
                .iter()
                .map(|(s, a)| format!("{s}px {:.2}%", 100.0 * a))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        let trained = base.executor.params()?;
        let probes = super::probes::measure(self, &model, &trained, seed)?;

        let perm = pixel_permutation(train.shape.height, train.shape.width, seed);
        let permuted = self.run(
            &format!("{label} permuted pixels"),
            &model,
            &model.init_params(seed),
            optim,
            &permute_pixels(train, &perm),
            &permute_pixels(test, &perm),
            p.epochs,
            seed,
        )?;

        let mut data_efficiency = Vec::new();
        let all: Vec<u8> = (0..data.num_classes as u8).collect();
        for &(n, epochs) in &p.sizes {
            // Balanced: the first n / classes images of each class.
            let small = select_classes(train, &all, Some(n / data.num_classes.max(1)));
            let r = self.run(
                &format!("{label} {} per class", n / data.num_classes.max(1)),
                &model,
                &model.init_params(seed),
                optim,
                &small,
                test,
                epochs,
                seed,
            )?;
            data_efficiency.push((small.len(), epochs, r.final_test()));
        }
        data_efficiency.push((train.len(), p.epochs, base.final_test()));

        let transfer = if data.num_classes >= 4 {
            Some(self.transfer(net, seed)?)
        } else {
            None
        };
        let canvas = super::scale::measure(self, net, seed)?;
        let budget = super::budget::measure(self, net, seed)?;
        Ok(SeedRecord {
            seed,
            canvas,
            budget,
            probes,
            test_accuracy: base.final_test(),
            train_accuracy: base.final_train(),
            train_images_per_sec: base.train_images_per_sec(),
            curves: base.epochs,
            shifted,
            permuted_test_accuracy: permuted.final_test(),
            data_efficiency,
            transfer,
        })
    }

    /// Pre-train on the first half of the classes, then learn the second half from a few examples per
    /// class with a re-initialised head: frozen body, fine-tuned, and from scratch.
    fn transfer(&mut self, net: &NetChoice, seed: u64) -> Result<TransferRecord> {
        let data = self.data;
        let p = self.protocol;
        let half = data.num_classes / 2;
        let first: Vec<u8> = (0..half as u8).collect();
        let second: Vec<u8> = (half as u8..data.num_classes as u8).collect();
        let model = net.build(data.train.shape, second.len().max(first.len()))?;
        // Both tasks have the same number of classes when it is even; an odd count gives the second
        // half one more, and the pre-training head simply has an unused output.
        let optim = self.recipe.optim;
        let label = net.label();
        let pre_train = select_classes(&data.train, &first, None);
        let pre_test = select_classes(&data.test, &first, None);
        let pre = self.run(
            &format!("{label} transfer pre-training"),
            &model,
            &model.init_params(seed),
            optim,
            &pre_train,
            &pre_test,
            p.epochs,
            seed,
        )?;
        let mut pretrained = pre.executor;
        let body = pretrained.params()?;
        let small = select_classes(&data.train, &second, Some(p.transfer_per_class));
        let new_test = select_classes(&data.test, &second, None);
        let head = model.head_offset();
        let fresh = model.init_params(seed + 1000);
        let mut with_new_head = body.clone();
        with_new_head[head..].copy_from_slice(&fresh[head..]);
        let mut frozen_optim = optim;
        frozen_optim.frozen_prefix = head;
        let e = p.transfer_epochs;
        let frozen = self.run(
            &format!("{label} transfer, body frozen"),
            &model,
            &with_new_head,
            frozen_optim,
            &small,
            &new_test,
            e,
            seed,
        )?;
        let tuned = self.run(
            &format!("{label} transfer, fine-tuned"),
            &model,
            &with_new_head,
            optim,
            &small,
            &new_test,
            e,
            seed,
        )?;
        let scratch = self.run(
            &format!("{label} same small set from scratch"),
            &model,
            &fresh,
            optim,
            &small,
            &new_test,
            e,
            seed,
        )?;
        Ok(TransferRecord {
            pretrain_accuracy: pre.epochs.last().map_or(0.0, |r| r.test_accuracy),
            frozen_body: frozen.final_test(),
            fine_tuned: tuned.final_test(),
            scratch: scratch.final_test(),
            new_task_train_images: small.len(),
        })
    }
}
