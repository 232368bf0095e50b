//! Seeded training-time augmentation: random shifts (zero fill) and horizontal flips, applied to the raw
//! bytes as a batch is assembled. Each epoch draws from its own stream (seed, epoch), so a resumed run
//! sees the same augmented images as an uninterrupted one.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// `--augment shift:N,flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Augment {
    /// Maximum shift in pixels, each axis, uniformly in `-shift..=shift`.
    pub shift: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// Parse `shift:N`, `flip` or both, comma-separated (`none` for no augmentation).
    pub fn parse(s: &str) -> Result<Self> {
        let mut a = Augment::default();
        let bad = |t: &str| {
            Error::Config(format!(
                "--augment {s}: unknown part `{t}`; use shift:N and/or flip, e.g. shift:2,flip"
            ))
        };
        for t in s.split(',').map(str::trim) {
            match t {
                "none" => {}
                "flip" => a.flip = true,
                _ if t.starts_with("shift:") => {
                    a.shift = t[6..].parse().map_err(|_| bad(t))?;
                }
                _ => return Err(bad(t)),
            }
        }
        Ok(a)
    }

    pub fn is_identity(&self) -> bool {
        self.shift == 0 && !self.flip
    }

    /// The stream of augmentation choices for `epoch` of a run seeded with `seed`.
    pub fn rng(seed: u64, epoch: usize) -> Rng {
        Rng::derive(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), 3)
    }

    /// Draw one image's transform: (dx, dy, flip).
    pub fn draw(&self, rng: &mut Rng) -> (isize, isize, bool) {
        let s = self.shift as isize;
        let mut d = || {
            if s == 0 {
                0
            } else {
                rng.below(2 * s as u64 + 1) as isize - s
            }
        };
        let (dx, dy) = (d(), d());
        let flip = self.flip && rng.below(2) == 1;
        (dx, dy, flip)
    }
}

/// Write `src` (`h x w`) shifted `dx` right and `dy` down (zero fill), then mirrored if `flip`, to `out`.
pub fn transform_plane(
    src: &[u8],
    h: usize,
    w: usize,
    dx: isize,
    dy: isize,
    flip: bool,
    out: &mut [u8],
) {
    for y in 0..h {
        let sy = y as isize - dy;
        for x in 0..w {
            let xx = if flip { w - 1 - x } else { x };
            let sx = xx as isize - dx;
            out[y * w + x] = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                src[sy as usize * w + sx as usize]
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_transform() {
        assert_eq!(
            Augment::parse("shift:2,flip").unwrap(),
            Augment {
                shift: 2,
                flip: true
            }
        );
        assert!(Augment::parse("none").unwrap().is_identity());
        assert!(Augment::parse("rotate").is_err());
        assert!(Augment::parse("shift:x").is_err());
        let src = [1, 2, 3, 4, 5, 6]; // 2 x 3
        let mut out = [9u8; 6];
        transform_plane(&src, 2, 3, 0, 0, false, &mut out);
        assert_eq!(out, src);
        transform_plane(&src, 2, 3, 1, 0, false, &mut out);
        assert_eq!(out, [0, 1, 2, 0, 4, 5]);
        transform_plane(&src, 2, 3, 0, 0, true, &mut out);
        assert_eq!(out, [3, 2, 1, 6, 5, 4]);
        transform_plane(&src, 2, 3, 0, 1, false, &mut out);
        assert_eq!(out, [0, 0, 0, 1, 2, 3]);
    }

    #[test]
    fn draws_stay_in_range_and_follow_the_seed() {
        let a = Augment {
            shift: 2,
            flip: true,
        };
        let mut r1 = Augment::rng(5, 3);
        let mut r2 = Augment::rng(5, 3);
        let mut flips = 0;
        for _ in 0..1000 {
            let d = a.draw(&mut r1);
            assert_eq!(d, a.draw(&mut r2));
            assert!((-2..=2).contains(&d.0) && (-2..=2).contains(&d.1));
            flips += usize::from(d.2);
        }
        assert!((400..600).contains(&flips), "{flips}");
        assert_ne!(Augment::rng(5, 3).next_u64(), Augment::rng(5, 4).next_u64());
    }
}
