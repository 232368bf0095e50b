//! The CPU's f32 peak, measured: every thread runs a loop of independent fused multiply-adds that lives
//! in registers (no memory traffic), with the widest vectors the CPU has. This is the ceiling a GEMM
//! can approach, so "% of peak" in `wgtrain bench` is relative to what this machine really does, not
//! to a clock figure a VM may misreport.

use std::time::Instant;

/// Measured peak of `threads` threads in GFLOP/s (2 FLOP per multiply-add) and the instruction set
/// used, or `None` where no FMA loop exists for this CPU (then the caller falls back to an estimate).
pub fn measure_fma_peak(threads: usize) -> Option<(f64, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        let (kernel, flop_per_iter, isa): (fn(u64) -> f32, u64, &str) =
            if std::arch::is_x86_feature_detected!("avx512f") {
                (x86::fma_avx512_safe, x86::FLOP_PER_ITER_512, "AVX-512 FMA")
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                (x86::fma_avx2_safe, x86::FLOP_PER_ITER_256, "AVX2 FMA")
            } else {
                return None;
            };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .ok()?;
        // Calibrate to about 0.15 s per measurement, then keep the best of three (a shared machine
        // only ever makes a run slower).
        let mut iters = 1u64 << 20;
        loop {
            let t = Instant::now();
            std::hint::black_box(kernel(iters));
            if t.elapsed().as_secs_f64() > 0.02 || iters > 1 << 34 {
                let per_iter = t.elapsed().as_secs_f64() / iters as f64;
                iters = ((0.15 / per_iter) as u64).max(1);
                break;
            }
            iters *= 4;
        }
        let mut best = 0f64;
        for _ in 0..3 {
            let t = Instant::now();
            pool.broadcast(|_| std::hint::black_box(kernel(std::hint::black_box(iters))));
            let secs = t.elapsed().as_secs_f64();
            let gflops = (threads.max(1) as u64 * iters * flop_per_iter) as f64 / secs / 1e9;
            best = best.max(gflops);
        }
        Some((best, isa))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Independent accumulator chains: enough to cover FMA latency (4 cycles) on two pipes.
    const CHAINS: usize = 12;
    pub const FLOP_PER_ITER_512: u64 = (CHAINS * 16 * 2) as u64;
    pub const FLOP_PER_ITER_256: u64 = (CHAINS * 8 * 2) as u64;

    pub fn fma_avx512_safe(iters: u64) -> f32 {
        // SAFETY: only selected after `is_x86_feature_detected!("avx512f")`.
        unsafe { fma_avx512(iters) }
    }

    pub fn fma_avx2_safe(iters: u64) -> f32 {
        // SAFETY: only selected after detecting avx2 and fma.
        unsafe { fma_avx2(iters) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn fma_avx512(iters: u64) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(*r, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for r in acc {
            sum = _mm512_add_ps(sum, r);
        }
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_avx2(iters: u64) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, a, b);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for r in acc {
            sum = _mm256_add_ps(sum, r);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn measured_peak_is_positive_where_measured() {
        if let Some((gflops, isa)) = super::measure_fma_peak(1) {
            assert!(gflops > 1.0, "{isa}: {gflops} GFLOP/s");
        }
    }
}
