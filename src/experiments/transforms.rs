//! Data transforms the experiments need, all on raw `u8` images (so "zero fill" is a black pixel,
//! exactly as a shifted photograph would be), each keeping labels and shapes.

use crate::data::Dataset;
use crate::rng::Rng;

/// A fixed random permutation of the `height * width` pixel positions, drawn from `seed`.
pub fn pixel_permutation(height: usize, width: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..height * width).collect();
    Rng::derive(seed, 7).shuffle(&mut perm);
    perm
}

/// Apply the same pixel permutation to every image (and every channel): output pixel `i` is input
/// pixel `perm[i]`. Destroys spatial structure while keeping every image's content.
pub fn permute_pixels(ds: &Dataset, perm: &[usize]) -> Dataset {
    let plane = ds.shape.height * ds.shape.width;
    assert_eq!(perm.len(), plane, "permutation length");
    let mut images = vec![0u8; ds.images.len()];
    for (dst, src) in images
        .chunks_exact_mut(plane)
        .zip(ds.images.chunks_exact(plane))
    {
        for (d, &p) in dst.iter_mut().zip(perm) {
            *d = src[p];
        }
    }
    Dataset {
        images,
        ..ds.clone()
    }
}

/// Shift every image `dx` pixels right and `dy` pixels down (negative: left / up), filling with zeros.
pub fn shift(ds: &Dataset, dx: isize, dy: isize) -> Dataset {
    let (h, w) = (ds.shape.height as isize, ds.shape.width as isize);
    let plane = (h * w) as usize;
    let mut images = vec![0u8; ds.images.len()];
    for (dst, src) in images
        .chunks_exact_mut(plane)
        .zip(ds.images.chunks_exact(plane))
    {
        for y in 0..h {
            let sy = y - dy;
            if sy < 0 || sy >= h {
                continue;
            }
            for x in 0..w {
                let sx = x - dx;
                if sx >= 0 && sx < w {
                    dst[(y * w + x) as usize] = src[(sy * w + sx) as usize];
                }
            }
        }
    }
    Dataset {
        images,
        ..ds.clone()
    }
}

/// Keep the examples whose label is in `classes`, relabelled to their position in `classes`
/// (so classes 5..=9 become 0..=4). At most `per_class` examples of each class when given, the first
/// ones in data-set order.
pub fn select_classes(ds: &Dataset, classes: &[u8], per_class: Option<usize>) -> Dataset {
    let n = ds.shape.len();
    let mut counts = vec![0usize; classes.len()];
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..ds.len() {
        if let Some(new) = classes.iter().position(|&c| c == ds.labels[i]) {
            if per_class.is_some_and(|cap| counts[new] >= cap) {
                continue;
            }
            counts[new] += 1;
            images.extend_from_slice(&ds.images[i * n..(i + 1) * n]);
            labels.push(new as u8);
        }
    }
    Dataset {
        shape: ds.shape,
        images,
        labels,
    }
}

/// Translated images: each image placed at its own random position (uniform over all positions where it
/// fits, drawn from `seed` and `stream`) on a `size x size` zero canvas, every channel alike. A 28x28
/// image on a 28 canvas is unchanged.
pub fn place_on_canvas(ds: &Dataset, size: usize, seed: u64, stream: u64) -> Dataset {
    let (c, h, w) = (ds.shape.channels, ds.shape.height, ds.shape.width);
    assert!(size >= h && size >= w, "canvas {size} smaller than {h}x{w}");
    let shape = crate::data::ImageShape {
        channels: c,
        height: size,
        width: size,
    };
    let mut rng = Rng::derive(seed, 1000 + stream);
    let mut images = vec![0u8; ds.len() * shape.len()];
    for (dst, src) in images
        .chunks_exact_mut(shape.len())
        .zip(ds.images.chunks_exact(ds.shape.len()))
    {
        let oy = rng.below((size - h + 1) as u64) as usize;
        let ox = rng.below((size - w + 1) as u64) as usize;
        for ch in 0..c {
            for y in 0..h {
                let s = &src[(ch * h + y) * w..(ch * h + y + 1) * w];
                let d0 = (ch * size + oy + y) * size + ox;
                dst[d0..d0 + w].copy_from_slice(s);
            }
        }
    }
    Dataset {
        shape,
        images,
        labels: ds.labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageShape;

    fn tiny() -> Dataset {
        // Two 2x3 images: 1..=6 and 11..=16, labels 7 and 2.
        Dataset {
            shape: ImageShape {
                channels: 1,
                height: 2,
                width: 3,
            },
            images: vec![1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16],
            labels: vec![7, 2],
        }
    }

    #[test]
    fn shift_right_down_fills_with_zero() {
        let s = shift(&tiny(), 1, 1);
        assert_eq!(&s.images[..6], &[0, 0, 0, 0, 1, 2]);
        let s = shift(&tiny(), -1, 0);
        assert_eq!(&s.images[..6], &[2, 3, 0, 5, 6, 0]);
        assert_eq!(shift(&tiny(), 0, 0).images, tiny().images);
        assert_eq!(shift(&tiny(), 3, 0).images, vec![0; 12]);
    }

    #[test]
    fn permutation_is_fixed_by_seed_and_applied_to_every_image() {
        let p = pixel_permutation(2, 3, 1);
        assert_eq!(p, pixel_permutation(2, 3, 1));
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
        let d = permute_pixels(&tiny(), &p);
        for (i, &src) in p.iter().enumerate() {
            assert_eq!(d.images[i], tiny().images[src]);
            assert_eq!(d.images[6 + i], tiny().images[6 + src]);
        }
        assert_eq!(d.labels, tiny().labels);
    }

    #[test]
    fn select_classes_relabels_and_caps() {
        let d = select_classes(&tiny(), &[2, 7], None);
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.images, tiny().images);
        let d = select_classes(&tiny(), &[7], None);
        assert_eq!(d.labels, vec![0]);
        assert_eq!(d.images, vec![1, 2, 3, 4, 5, 6]);
        let mut two = tiny();
        two.labels = vec![2, 2];
        assert_eq!(select_classes(&two, &[2], Some(1)).len(), 1);
    }

    #[test]
    fn canvas_placement_keeps_each_image_whole_at_a_seeded_position() {
        let square = Dataset {
            shape: ImageShape {
                channels: 1,
                height: 2,
                width: 2,
            },
            images: vec![1, 2, 3, 4],
            labels: vec![0],
        };
        let same = place_on_canvas(&square, 2, 1, 0);
        assert_eq!(same.images, square.images, "no room to move: unchanged");
        let ds = tiny();
        let big = place_on_canvas(&ds, 9, 1, 0);
        assert_eq!((big.shape.height, big.shape.width), (9, 9));
        assert_eq!(big.labels, ds.labels);
        let sum = |v: &[u8]| v.iter().map(|&p| p as u64).sum::<u64>();
        let n = ds.shape.len();
        for i in 0..ds.len() {
            assert_eq!(
                sum(&big.images[i * 81..(i + 1) * 81]),
                sum(&ds.images[i * n..(i + 1) * n])
            );
        }
        assert_eq!(place_on_canvas(&ds, 9, 1, 0).images, big.images, "seeded");
        assert_ne!(
            place_on_canvas(&ds, 9, 2, 0).images,
            big.images,
            "another seed moves them"
        );
    }
}
