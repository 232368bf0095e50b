//! Memory-bound loops (BatchNorm, residual adds, ReLU masks) compiled for the CPU's widest vectors.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary runs on every x86-64 machine;
//! plain Rust loops then run four floats at a time. [`vectorized`] runs a closure inside a function
//! compiled with AVX-512 or AVX2 enabled (whichever the CPU has): the closure and the
//! `#[inline(always)]` helpers it calls are inlined there and compiled with those features. Results do
//! not change: without fast-math the compiler keeps every operation and its order (no FMA
//! contraction), only the registers are wider. Work that rayon hands to other threads runs in other
//! functions, so callers wrap the body of each task, not the parallel loop.

/// An x86-64 vector instruction set: what the direct conv kernels run on (`ops::conv2d_direct`)
/// and what [`vectorized`] compiles for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Simd {
    /// AVX2 + FMA: 8 floats a vector, 16 vector registers.
    Avx2,
    /// AVX-512F: 16 floats a vector, 32 vector registers (tiles twice as wide and up to twice as
    /// tall).
    Avx512,
}

impl Simd {
    /// Whether this CPU has the instruction set.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            match self {
                Simd::Avx2 => avx2,
                Simd::Avx512 => avx2 && std::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    /// The widest instruction set this CPU has, if any.
    pub fn best() -> Option<Simd> {
        [Simd::Avx512, Simd::Avx2]
            .into_iter()
            .find(|s| s.available())
    }

    /// Floats per vector.
    pub fn lanes(self) -> usize {
        match self {
            Simd::Avx2 => 8,
            Simd::Avx512 => 16,
        }
    }

    /// The name `wgtrain devices` and `WGTRAIN_CPU_SIMD` use.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }
}

/// `f()`, compiled for AVX-512 where the CPU has it, else AVX2, else as built. Only what is inlined
/// into the wide function is compiled wide, and LLVM leaves a large closure out of line (compiled for
/// the baseline, seen in a profile), so callers mark the closure: `vectorized(#[inline(always)] || ..)`.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    match Simd::best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `best` found AVX-512F, AVX2 and FMA on this CPU.
        Some(Simd::Avx512) => unsafe { on_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `best` found AVX2 and FMA on this CPU.
        Some(Simd::Avx2) => unsafe { on_avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn on_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Floats per task of the parallel elementwise loops: big enough to amortise a task, small enough
/// that a batch splits over the threads.
pub const TASK: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectorized_runs_the_closure_with_the_same_result() {
        let v: Vec<f32> = (0..1000).map(|i| (i as f32).sin()).collect();
        let plain = crate::ops::sum_lanes_with(&v, |x| x * x);
        let wide = vectorized(
            #[inline(always)]
            || crate::ops::sum_lanes_with(&v, |x| x * x),
        );
        assert_eq!(plain.to_bits(), wide.to_bits());
    }
}
