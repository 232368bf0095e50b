//! Optimisers over the flat parameter vector: SGD (+momentum) and Adam, CPU loop and GPU kernel
//! (`shaders/optim.wgsl`) computing the same formulas (PyTorch's, weight decay as L2 on the gradient).

use crate::device::gpu::Kernel;

/// Optimiser choice and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum OptimizerKind {
    /// SGD with (PyTorch-style, undampened) momentum; 0 disables it.
    Sgd { momentum: f32 },
    /// Adam (Kingma & Ba), PyTorch's formulation.
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

/// Optimiser configuration shared by both devices.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// L2 penalty added to the gradient (PyTorch `weight_decay`).
    pub weight_decay: f32,
    /// Parameters before this offset of the flat vector are frozen (not updated); 0 trains everything.
    /// Used to train only the head of a network (`Model::head_offset`).
    pub frozen_prefix: usize,
    /// The run's seed: dropout masks are a function of it, the node and the step number, so a run and
    /// its resume draw the same masks.
    pub seed: u64,
}

impl OptimConfig {
    pub fn adam(lr: f32) -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
            weight_decay: 0.0,
            frozen_prefix: 0,
            seed: 0,
        }
    }

    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimConfig {
            kind: OptimizerKind::Sgd { momentum },
            lr,
            weight_decay: 0.0,
            frozen_prefix: 0,
            seed: 0,
        }
    }
}

/// Optimiser state for one model: first/second moments (or the momentum buffer) and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub t: u64,
}

impl OptimState {
    pub fn new(len: usize) -> Self {
        OptimState {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }
}

/// Uniform of `shaders/optim.wgsl` for step `t` (1-based). Bias corrections are computed in f64 here so
/// both devices use the same rounded constants.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    /// Total length of the flat vector.
    pub n: u32,
    /// First index updated (frozen prefix).
    pub start: u32,
    pub pad: [u32; 2],
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub step_size: f32,
    pub bc2_sqrt: f32,
    pub weight_decay: f32,
    pub momentum: f32,
}

impl OptimParams {
    pub fn new(cfg: &OptimConfig, n: usize, t: u64) -> Self {
        let mut p = OptimParams {
            n: n as u32,
            start: cfg.frozen_prefix.min(n) as u32,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        };
        match cfg.kind {
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let t = t as i32;
                p.beta1 = beta1;
                p.beta2 = beta2;
                p.eps = eps;
                p.step_size = (cfg.lr as f64 / (1.0 - (beta1 as f64).powi(t))) as f32;
                p.bc2_sqrt = (1.0 - (beta2 as f64).powi(t)).sqrt() as f32;
            }
            OptimizerKind::Sgd { momentum } => p.momentum = momentum,
        }
        p
    }
}

/// Parameters per parallel chunk of the CPU update (element-wise, so the split changes no result).
const CPU_CHUNK: usize = 16 * 1024;

/// One optimiser step on the CPU: the same arithmetic, in the same order, as the GPU kernels; element-
/// wise, so it is split across threads without changing any result.
pub fn step_cpu(cfg: &OptimConfig, state: &mut OptimState, params: &mut [f32], grads: &[f32]) {
    use crate::ops::vector::vectorized;
    use rayon::prelude::*;
    state.t += 1;
    let p = OptimParams::new(cfg, params.len(), state.t);
    let start = p.start as usize;
    let (params, grads) = (&mut params[start..], &grads[start..]);
    let (m, v) = (&mut state.m[start..], &mut state.v[start..]);
    match cfg.kind {
        OptimizerKind::Adam { .. } => {
            params
                .par_chunks_mut(CPU_CHUNK)
                .zip(grads.par_chunks(CPU_CHUNK))
                .zip(m.par_chunks_mut(CPU_CHUNK))
                .zip(v.par_chunks_mut(CPU_CHUNK))
                .for_each(|(((w, g), m), v)| {
                    // On the widest vectors the CPU has (a square root and a division per
                    // parameter); the same IEEE operations per element as the plain loop.
                    vectorized(
                        #[inline(always)]
                        || {
                            let it = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
                            for (((w, &g), m), v) in it {
                                let g = g + p.weight_decay * *w;
                                *m = p.beta1 * *m + (1.0 - p.beta1) * g;
                                *v = p.beta2 * *v + (1.0 - p.beta2) * g * g;
                                *w -= p.step_size * *m / (v.sqrt() / p.bc2_sqrt + p.eps);
                            }
                        },
                    )
                });
        }
        OptimizerKind::Sgd { momentum } => {
            params
                .par_chunks_mut(CPU_CHUNK)
                .zip(grads.par_chunks(CPU_CHUNK))
                .zip(m.par_chunks_mut(CPU_CHUNK))
                .for_each(|((w, g), m)| {
                    vectorized(
                        #[inline(always)]
                        || {
                            for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                                let g = g + p.weight_decay * *w;
                                let step = if momentum != 0.0 {
                                    *m = momentum * *m + g;
                                    *m
                                } else {
                                    g
                                };
                                *w -= p.lr * step;
                            }
                        },
                    )
                });
        }
    }
}

/// Parameters each invocation of the optimiser kernels updates (`PER_INVOCATION` in optim.wgsl).
pub const PER_INVOCATION: usize = 8;

pub const ADAM: Kernel = Kernel {
    name: "adam",
    source: include_str!("../shaders/optim.wgsl"),
    entry: "adam",
};

pub const SGD: Kernel = Kernel {
    name: "sgd",
    source: include_str!("../shaders/optim.wgsl"),
    entry: "sgd",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_each_weight_by_lr() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps') = ~lr * sign(g).
        let cfg = OptimConfig::adam(0.01);
        let mut st = OptimState::new(3);
        let mut w = vec![1.0, 1.0, 1.0];
        step_cpu(&cfg, &mut st, &mut w, &[0.5, -2.0, 0.0]);
        assert!((w[0] - 0.99).abs() < 1e-6, "{w:?}");
        assert!((w[1] - 1.01).abs() < 1e-6, "{w:?}");
        assert_eq!(w[2], 1.0);
    }

    #[test]
    fn frozen_prefix_is_not_updated() {
        let mut cfg = OptimConfig::adam(0.01);
        cfg.frozen_prefix = 2;
        let mut st = OptimState::new(3);
        let mut w = vec![1.0, 1.0, 1.0];
        step_cpu(&cfg, &mut st, &mut w, &[0.5, 0.5, 0.5]);
        assert_eq!(&w[..2], &[1.0, 1.0]);
        assert!(w[2] < 1.0);
    }

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let cfg = OptimConfig::sgd(0.1, 0.9);
        let mut st = OptimState::new(1);
        let mut w = vec![1.0];
        step_cpu(&cfg, &mut st, &mut w, &[1.0]); // buf 1, w 0.9
        step_cpu(&cfg, &mut st, &mut w, &[1.0]); // buf 1.9, w 0.71
        assert!((w[0] - 0.71).abs() < 1e-6, "{w:?}");
    }
}
