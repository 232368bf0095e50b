//! `dropout{P}` (e.g. `dropout0.2`): inverted dropout (PyTorch `nn.Dropout(p)`), identity in evaluation.
//! Whether element `i` of a batch is kept is a counter-based hash of (run seed, 1-based step, node salt,
//! `i`) — no mask is stored, the backward recomputes it, both devices compute the same function, and a
//! resumed run (same seed, restored step count) draws the same masks as the straight run.
//! Shapes: any; elementwise over `[batch, len]`. Kernels: `shaders/dropout.wgsl`.

use super::vector::vectorized;
use crate::device::gpu::{grid_1d, Kernel, PlanBuilder};
use crate::nn::graph::{GraphBuilder, TensorId};
use crate::nn::op::{CpuBackward, CpuForward, GpuBackward, GpuForward, Layer, Op, Shape};
use crate::nn::portable::Portable;
use rayon::prelude::*;
use std::any::Any;

const SOURCE: &str = include_str!("../../shaders/dropout.wgsl");
pub const DROPOUT_FORWARD: Kernel = Kernel {
    name: "dropout_forward",
    source: SOURCE,
    entry: "dropout_forward",
};
pub const DROPOUT_BACKWARD: Kernel = Kernel {
    name: "dropout_backward",
    source: SOURCE,
    entry: "dropout_backward",
};
const FLAG_EVAL: u32 = 32;

/// `dropout{P}` in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct DropoutLayer {
    pub p: f32,
}

pub fn parse(t: &str) -> Option<std::result::Result<Box<dyn Layer>, String>> {
    let rest = t.strip_prefix("dropout")?;
    Some(match rest.parse::<f32>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(Box::new(DropoutLayer { p })),
        _ => Err("expected dropout{P} with 0 <= P < 1, e.g. dropout0.2".into()),
    })
}

impl Layer for DropoutLayer {
    fn token(&self) -> String {
        format!("dropout{}", self.p)
    }

    fn lower(&self, g: &mut GraphBuilder, x: TensorId) -> std::result::Result<TensorId, String> {
        let shape = g.shape(x);
        let op = Dropout {
            p: self.p,
            len: shape.len(),
            salt: g.next_node() as u32,
        };
        Ok(g.node(Box::new(op), &[x], shape))
    }

    fn portable(&self, _input: Shape) -> std::result::Result<Portable, String> {
        Ok(Portable::Dropout { p: self.p })
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}

/// The resolved dropout over `len` floats per example.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    pub p: f32,
    pub len: usize,
    /// Distinguishes this node's stream from other dropout nodes'.
    pub salt: u32,
}

/// Element `i`'s value after dropout: `s * scale` if its hash clears the threshold, else 0.
#[inline(always)]
fn kept(i: u32, key: u32, threshold: u32, s: f32, scale: f32) -> f32 {
    if mix(i ^ key) >= threshold {
        s * scale
    } else {
        0.0
    }
}

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32" constants).
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846ca68b);
    x ^= x >> 16;
    x
}

impl Dropout {
    fn threshold(&self) -> u32 {
        ((self.p as f64) * 4294967296.0).min(u32::MAX as f64) as u32
    }

    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    fn key(&self, seed: u64, step: u64) -> u32 {
        mix(step as u32 ^ mix(self.salt ^ mix(seed as u32 ^ mix((seed >> 32) as u32))))
    }

    /// `dst = src * scale` where element `i`'s hash keeps it, else 0; with `mask` (the backward of a
    /// fused ReLU before the dropout) also 0 where `mask <= 0`, in the same pass (the rule of
    /// `relu_mask`). The hash vectorises (32-bit multiplies, shifts) on the CPU's widest vectors.
    fn apply(
        &self,
        src: &[f32],
        dst: &mut [f32],
        mask: Option<&[f32]>,
        n: usize,
        seed: u64,
        step: u64,
    ) {
        const CHUNK: usize = 4096;
        let (key, thr, scale) = (self.key(seed, step), self.threshold(), self.scale());
        dst[..n]
            .par_chunks_mut(CHUNK)
            .zip(src[..n].par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (d, s))| {
                let base = (c * CHUNK) as u32;
                let m = mask.map(|m| &m[c * CHUNK..c * CHUNK + d.len()]);
                vectorized(
                    #[inline(always)]
                    || match m {
                        None => {
                            for (j, (d, &s)) in d.iter_mut().zip(s).enumerate() {
                                *d = kept(base + j as u32, key, thr, s, scale);
                            }
                        }
                        Some(m) => {
                            for (j, ((d, &s), &m)) in d.iter_mut().zip(s).zip(m).enumerate() {
                                let v = kept(base + j as u32, key, thr, s, scale);
                                *d = if m <= 0.0 { 0.0 } else { v };
                            }
                        }
                    },
                )
            });
    }

    fn push(
        &self,
        pb: &mut PlanBuilder<'_>,
        k: &Kernel,
        n: usize,
        flags: u32,
        b: &[(u32, &wgpu::Buffer)],
    ) {
        let p = DropoutParams {
            n: u32::try_from(n).expect("dropout length exceeds u32"),
            flags,
            threshold: self.threshold(),
            salt: self.salt,
            scale: self.scale(),
            pad: [0; 3],
        };
        let max = pb.ctx().limits.max_compute_workgroups_per_dimension;
        pb.push_bindings(k, &p, b, grid_1d(n.div_ceil(256) as u32, max));
    }
}

/// Uniform of `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    n: u32,
    flags: u32,
    threshold: u32,
    salt: u32,
    scale: f32,
    pad: [u32; 3],
}

impl Op for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }

    fn eval_identity(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn cpu_forward(&self, a: CpuForward<'_>) {
        let n = a.batch * self.len;
        if a.train {
            self.apply(a.inputs[0], a.output, None, n, a.seed, a.step);
        } else {
            a.output[..n].copy_from_slice(&a.inputs[0][..n]);
        }
    }

    fn cpu_backward(&self, mut a: CpuBackward<'_>) {
        let Some(g) = a.dx[0].take() else { return };
        let n = a.batch * self.len;
        self.apply(a.dy, g.dx, g.mask, n, a.seed, a.step);
    }

    fn gpu_forward(&self, pb: &mut PlanBuilder<'_>, a: GpuForward<'_>) {
        let flags = if a.train { 0 } else { FLAG_EVAL };
        let bindings = [(1, a.inputs[0]), (2, a.output), (3, a.step)];
        self.push(pb, &DROPOUT_FORWARD, a.batch * self.len, flags, &bindings);
    }

    fn gpu_backward(&self, pb: &mut PlanBuilder<'_>, a: GpuBackward<'_>) {
        let Some(g) = &a.dx[0] else { return };
        let flags = if g.mask.is_some() {
            super::FLAG_MASK
        } else {
            0
        };
        let bindings = [
            (1, a.dy),
            (2, g.dx),
            (3, a.step),
            (4, g.mask.unwrap_or(a.dy)),
        ];
        self.push(pb, &DROPOUT_BACKWARD, a.batch * self.len, flags, &bindings);
    }
}
