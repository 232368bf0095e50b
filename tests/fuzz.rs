//! Bounded, seeded fuzzing of every reader: random bytes and mutations of valid files (bit flips,
//! truncation, huge header fields) must give an error or a value, never a panic or a huge allocation.
//! Deterministic (fixed seeds) so a failure reproduces; a few thousand cases, about a second.

use std::path::Path;
use wgtrain::checkpoint;
use wgtrain::data::idx::{parse_idx, parse_idx_maybe_gz};
use wgtrain::data::ImageShape;
use wgtrain::models;
use wgtrain::rng::Rng;

fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    match rng.below(5) {
        0 => {
            // flip a few bits
            for _ in 0..1 + rng.below(8) {
                if !v.is_empty() {
                    let i = rng.below(v.len() as u64) as usize;
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => v.truncate(rng.below(v.len() as u64 + 1) as usize),
        2 => {
            // overwrite a 4-byte field near the start with an extreme value
            let at = (rng.below(16) as usize).min(v.len().saturating_sub(4));
            let big = [0xff, 0xff, 0xff, 0xff];
            let n = v.len().min(at + 4);
            v[at..n].copy_from_slice(&big[..n - at]);
        }
        3 => {
            // append garbage
            for _ in 0..rng.below(64) {
                v.push(rng.below(256) as u8);
            }
        }
        _ => v = (0..rng.below(256)).map(|_| rng.below(256) as u8).collect(),
    }
    v
}

fn valid_idx() -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    v.extend((0..18).map(|i| i as u8));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_reader_never_panics() {
    let mut rng = Rng::new(1);
    let plain = valid_idx();
    let gz = gzip(&plain);
    let p = Path::new("fuzz.idx");
    for _ in 0..3000 {
        let m = mutate(&mut rng, &plain);
        if let Ok(a) = parse_idx(&m, p) {
            assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
        let _ = parse_idx_maybe_gz(&mutate(&mut rng, &gz), p);
    }
}

#[test]
fn checkpoint_loader_never_panics() {
    let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = ImageShape {
        channels: 1,
        height: 4,
        width: 4,
    };
    let model = models::build(
        None,
        Some("conv3x3x2p1,relu,maxpool2,flatten,fc3"),
        input,
        3,
    )
    .unwrap();
    let meta = checkpoint::CheckpointMeta {
        model_name: "custom".into(),
        arch: model.spec(),
        input,
        num_classes: 3,
        normalization: wgtrain::data::Normalization {
            mean: vec![0.5],
            std: vec![0.25],
        },
        class_names: vec!["a".into(), "b".into(), "c".into()],
        epoch: 1,
    };
    let good = dir.join("good.safetensors");
    checkpoint::save(
        &good,
        &model,
        &model.init_params(0),
        &model.init_state(),
        &meta,
    )
    .unwrap();
    let (m2, p2, meta2) = checkpoint::load(&good).unwrap();
    assert_eq!((m2.spec(), meta2), (model.spec(), meta));
    assert_eq!(p2.params, model.init_params(0));
    let valid = std::fs::read(&good).unwrap();
    let mut rng = Rng::new(2);
    let bad = dir.join("bad.safetensors");
    for _ in 0..600 {
        std::fs::write(&bad, mutate(&mut rng, &valid)).unwrap();
        if let Ok((m, p, _)) = checkpoint::load(&bad) {
            assert_eq!(p.params.len(), m.param_len);
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn arch_parser_and_shape_check_never_panic() {
    let mut rng = Rng::new(3);
    let tokens = [
        "conv3x3x8p1",
        "conv5x5x4s2",
        "conv1x1x2",
        "conv0x3x1",
        "conv3x3x0",
        "conv99x99x1",
        "maxpool2",
        "maxpool3s2",
        "maxpool0",
        "avgpool2",
        "avgpool40",
        "flatten",
        "fc10",
        "fc0",
        "fc3",
        "relu",
        "",
        "x",
        "conv3x3",
        "fcx",
        "maxpools2",
        "conv3x3x8p1s0",
    ];
    let shapes = [(1, 28, 28), (3, 8, 5), (2, 1, 1), (1, 3, 3)];
    for _ in 0..4000 {
        let n = 1 + rng.below(8) as usize;
        let spec: Vec<&str> = (0..n)
            .map(|_| tokens[rng.below(tokens.len() as u64) as usize])
            .collect();
        let (c, h, w) = shapes[rng.below(shapes.len() as u64) as usize];
        let input = ImageShape {
            channels: c,
            height: h,
            width: w,
        };
        let classes = 2 + rng.below(9) as usize;
        if let Ok(m) = models::build(None, Some(&spec.join(",")), input, classes) {
            assert_eq!(m.num_classes, classes);
            assert!(m.param_len >= m.num_params());
        }
    }
    // Random characters too.
    for _ in 0..2000 {
        let s: String = (0..rng.below(40))
            .map(|_| (32 + rng.below(95) as u8) as char)
            .collect();
        let _ = models::parse_arch(&s);
    }
}

#[test]
fn cifar_and_image_readers_never_panic() {
    let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-img-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(4);
    // CIFAR-10: a valid 3-record batch, mutated.
    let mut valid = Vec::new();
    for i in 0..3u8 {
        valid.push(i);
        valid.extend((0..3072).map(|j| (j % 251) as u8));
    }
    for _ in 0..200 {
        std::fs::write(dir.join("data_batch_1.bin"), mutate(&mut rng, &valid)).unwrap();
        std::fs::write(dir.join("test_batch.bin"), mutate(&mut rng, &valid)).unwrap();
        if let Ok((tr, te, names)) = wgtrain::data::cifar::load_cifar_dir(&dir) {
            assert_eq!(tr.images.len(), tr.len() * 3072);
            assert_eq!(te.images.len(), te.len() * 3072);
            assert_eq!(names.len(), 10);
        }
    }
    // Image files: a valid 6x5 PNG, mutated, decoded as predict and image folders do.
    let png = dir.join("valid.png");
    image::GrayImage::from_fn(6, 5, |x, y| image::Luma([(x * 40 + y * 7) as u8]))
        .save(&png)
        .unwrap();
    let valid = std::fs::read(&png).unwrap();
    let bad = dir.join("bad.png");
    let shape = ImageShape {
        channels: 3,
        height: 4,
        width: 4,
    };
    for _ in 0..300 {
        std::fs::write(&bad, mutate(&mut rng, &valid)).unwrap();
        if let Ok(px) = wgtrain::predict::load_image(&bad, shape) {
            assert_eq!(px.len(), 48);
        }
    }
    std::fs::remove_dir_all(dir).ok();
}
