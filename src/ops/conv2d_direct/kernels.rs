//! The register-tiled loops behind [`correlate`](super::correlate) and [`reduce`](super::reduce),
//! written once and instantiated per instruction set: [`avx2`] (8 floats a vector, 16 registers) and
//! [`avx512`] (16 floats a vector, 32 registers). Each instantiation is compiled with its own target
//! features, so the intrinsics inline and the accumulators stay in registers; only a caller that has
//! checked the CPU's features may call them (see `Simd::available`).

/// One instruction set's kernels: `$feat` its target features, `$lanes` floats a vector, then its zero / unaligned load / store / broadcast / fused multiply-add / horizontal sum.
#[cfg(target_arch = "x86_64")]
macro_rules! kernels {
    ($m:ident, $feat:literal, $lanes:literal,
     $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident, $hsum:ident) => {
        pub mod $m {
            #[allow(unused_imports)]
            use super::*;
            use std::arch::x86_64::*;

            /// Floats per vector.
            pub const LANES: usize = $lanes;

            /// One tile of `correlate`: `CO` rows (filters packed `w[k * CO + r]`) x `LANES * PV`
            /// positions from `q0`.
            ///
            /// # Safety
            /// The CPU has the instruction set's features; `src` is readable at `q0 + max(offs) +
            /// LANES * PV`, `w` at `offs.len() * CO`, `out` writable at `(CO - 1) * ostride + q0 +
            /// LANES * PV`.
            #[target_feature(enable = $feat)]
            pub unsafe fn correlate_tile<const CO: usize, const PV: usize>(
                src: &[f32],
                offs: &[u32],
                w: &[f32],
                out: &mut [f32],
                ostride: usize,
                q0: usize,
            ) {
                let (s, w, o) = (src.as_ptr().add(q0), w.as_ptr(), out.as_mut_ptr().add(q0));
                let mut acc = [[$zero(); PV]; CO];
                for (kk, &off) in offs.iter().enumerate() {
                    let at = s.add(off as usize);
                    let mut x = [$zero(); PV];
                    for (v, xv) in x.iter_mut().enumerate() {
                        *xv = $load(at.add(LANES * v));
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let wv = $set1(*w.add(kk * CO + r));
                        for (a, xv) in row.iter_mut().zip(&x) {
                            *a = $fma(wv, *xv, *a);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    let dst = o.add(r * ostride);
                    for (v, a) in row.iter().enumerate() {
                        $store(dst.add(LANES * v), *a);
                    }
                }
            }

            /// `reduce`'s loops: tiles of `CO` rows of `dy` x `KT` offsets, each accumulated over
            /// the positions `0..nv` (a multiple of `LANES`) and the group's examples before one
            /// horizontal sum per accumulator.
            ///
            /// # Safety
            /// The CPU has the instruction set's features and the reads are in bounds (asserted by
            /// `reduce`).
            #[target_feature(enable = $feat)]
            pub unsafe fn reduce_tiles<const CO: usize, const KT: usize>(
                g: &super::super::Group<'_>,
                rows: usize,
                offs: &[u32],
                nv: usize,
                dw: &mut [f32],
            ) {
                let k = offs.len();
                for tile in 0..rows.div_ceil(CO) {
                    let mut k0 = 0;
                    while k0 < k {
                        // A short last group of offsets repeats its first one; the extra sums are
                        // dropped.
                        let mut off = [offs[k0] as usize; KT];
                        for (i, o) in off.iter_mut().enumerate() {
                            if k0 + i < k {
                                *o = offs[k0 + i] as usize;
                            }
                        }
                        let mut acc = [[$zero(); KT]; CO];
                        for e in 0..g.examples {
                            let d = g.dy.as_ptr().add(e * g.dy_stride + tile * CO * g.dstride);
                            let x = g.x.as_ptr().add(e * g.x_stride);
                            let mut q = 0;
                            while q < nv {
                                let mut xv = [$zero(); KT];
                                for (v, o) in xv.iter_mut().zip(&off) {
                                    *v = $load(x.add(o + q));
                                }
                                for (r, row) in acc.iter_mut().enumerate() {
                                    let dv = $load(d.add(r * g.dstride + q));
                                    for (a, v) in row.iter_mut().zip(&xv) {
                                        *a = $fma(dv, *v, *a);
                                    }
                                }
                                q += LANES;
                            }
                        }
                        for (r, row) in acc.iter().enumerate() {
                            let rr = tile * CO + r;
                            if rr >= rows {
                                break;
                            }
                            for (i, a) in row.iter().enumerate() {
                                if k0 + i < k {
                                    dw[rr * k + k0 + i] += $hsum(*a);
                                }
                            }
                        }
                        k0 += KT;
                    }
                }
            }
        }
    };
}

/// The sum of an AVX vector's eight floats.
///
/// # Safety
/// The CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[cfg(target_arch = "x86_64")]
kernels!(
    avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    hsum256
);

#[cfg(target_arch = "x86_64")]
kernels!(
    avx512,
    "avx512f,avx2,fma",
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_reduce_add_ps
);
