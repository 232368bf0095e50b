//! Memory-bound loops (BatchNorm, residual adds, ReLU masks) compiled for the CPU's widest vectors.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary runs on every x86-64 machine;
//! plain Rust loops then run four floats at a time. [`vectorized`] runs a closure inside a function
//! compiled with AVX-512 or AVX2 enabled (whichever the CPU has): the closure and the
//! `#[inline(always)]` helpers it calls are inlined there and compiled with those features. Results do
//! not change: without fast-math the compiler keeps every operation and its order (no FMA
//! contraction), only the registers are wider. Work that rayon hands to other threads runs in other
//! functions, so callers wrap the body of each task, not the parallel loop.

/// `f()`, compiled for AVX-512 where the CPU has it, else AVX2, else as built. Only what is inlined
/// into the wide function is compiled wide, and LLVM leaves a large closure out of line (compiled for
/// the baseline, seen in a profile), so callers mark the closure: `vectorized(#[inline(always)] || ..)`.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (and with it AVX2 and FMA).
            return unsafe { on_avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { on_avx2(f) };
        }
    }
    f()
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
