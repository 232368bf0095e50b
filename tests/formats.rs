//! Each data format trains end to end, on both devices: IDX (the embedded set elsewhere, a generated
//! one here through format detection), CIFAR-10 binary and image folders (two-level train/test and a
//! single level split by --val-split). Small synthetic sets built on the fly; a class is a coloured or
//! bright block at a class-specific place, so a few epochs must learn it.

mod common;

use common::cli::idx;

use std::path::{Path, PathBuf};
use wgtrain::data::{self, DataChoice, DataSplit, DirOptions, Format};
use wgtrain::models;
use wgtrain::nn::OptimConfig;
use wgtrain::rng::Rng;
use wgtrain::train::{train, TrainConfig};
use wgtrain::Device;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-formats-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// CHW bytes of a `c x h x w` image of class `label`: a bright 3x3 block whose place depends on the
/// class (and, for colour images, in the class's colour channel), plus noise.
fn pattern(label: usize, c: usize, h: usize, w: usize, rng: &mut Rng) -> Vec<u8> {
    let (by, bx) = (1 + (label / 3) * 3 % (h - 3), 1 + (label % 3) * 3 % (w - 3));
    let mut v = vec![0u8; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let on = (by..by + 3).contains(&y)
                    && (bx..bx + 3).contains(&x)
                    && (c == 1 || ch == label % c);
                v[(ch * h + y) * w + x] = if on { 200 } else { 0 } + rng.below(50) as u8;
            }
        }
    }
    v
}

fn fit(data: &DataSplit, device: &Device, model: &str, epochs: usize) -> f64 {
    let m = models::build(Some(model), None, data.train.shape, data.num_classes).unwrap();
    let cfg = TrainConfig {
        epochs,
        batch_size: 16,
        seed: 1,
        eval_batch_size: 64,
        progress: false,
        start_epoch: 0,
        lr_schedule: None,
        early_stop: None,
        best_val: None,
        augment: None,
        recalibrate_bn: None,
        test_every_epoch: true,
    };
    let mut exec = device
        .executor(
            &m,
            &m.init_params(1),
            OptimConfig::adam(3e-3),
            cfg.max_batch(),
        )
        .unwrap();
    let out = train(
        &mut *exec,
        &data.train,
        &data.test,
        &data.normalization,
        &cfg,
        |_, _| Ok(()),
    )
    .unwrap();
    out.epochs.last().unwrap().test_accuracy
}

fn devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    if let Some(ctx) = common::gpu() {
        v.push(Device::Gpu(ctx));
    }
    v
}

fn write_cifar(dir: &Path, train: usize, test: usize) {
    let mut rng = Rng::new(5);
    let mut records = |n: usize| {
        let mut bytes = Vec::new();
        for i in 0..n {
            let label = i % 10;
            bytes.push(label as u8);
            bytes.extend(pattern(label, 3, 32, 32, &mut rng));
        }
        bytes
    };
    std::fs::write(dir.join("data_batch_1.bin"), records(train)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), records(test)).unwrap();
}

#[test]
fn cifar_binary_trains_the_cnn_on_both_devices() {
    let dir = tmp("cifar");
    write_cifar(&dir, 300, 100);
    let data = data::load(&DataChoice::Dir(dir.clone()), &Default::default()).unwrap();
    assert_eq!(data.train.shape.channels, 3);
    assert_eq!(
        (data.train.len(), data.test.len(), data.num_classes),
        (300, 100, 10)
    );
    assert_eq!(data.class_names[0], "airplane");
    assert_eq!(
        data.normalization.mean.len(),
        3,
        "per-channel normalisation"
    );
    // The cnn preset adapts: 3 input channels and a 32*8*8 = 2048-wide flatten.
    let m = models::build(Some("cnn"), None, data.train.shape, 10).unwrap();
    assert_eq!(m.params[4].shape, vec![128, 2048]);
    for d in devices() {
        let acc = fit(&data, &d, "cnn", 4);
        assert!(acc > 0.5, "{} cnn on CIFAR-format data: {acc}", d.kind());
    }
    // A truncated batch file: a clear error naming it.
    let bytes = std::fs::read(dir.join("test_batch.bin")).unwrap();
    std::fs::write(dir.join("test_batch.bin"), &bytes[..bytes.len() - 7]).unwrap();
    let e = data::load(&DataChoice::Dir(dir.clone()), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("not a whole number"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

fn write_png(path: &Path, chw: &[u8], c: usize, h: usize, w: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if c == 1 {
        image::GrayImage::from_raw(w as u32, h as u32, chw.to_vec())
            .unwrap()
            .save(path)
            .unwrap();
    } else {
        let mut rgb = image::RgbImage::new(w as u32, h as u32);
        for (i, px) in rgb.pixels_mut().enumerate() {
            *px = image::Rgb([chw[i], chw[h * w + i], chw[2 * h * w + i]]);
        }
        rgb.save(path).unwrap();
    }
}

#[test]
fn image_folders_train_on_both_devices() {
    let names = ["cat", "dog", "owl"];
    let mut rng = Rng::new(6);
    // Two levels: train/<class>, test/<class>; RGB 12x10.
    let two = tmp("folders2");
    for (label, name) in names.iter().enumerate() {
        for i in 0..40 {
            let split = if i < 30 { "train" } else { "test" };
            let img = pattern(label, 3, 12, 10, &mut rng);
            write_png(
                &two.join(split).join(name).join(format!("{i:03}.png")),
                &img,
                3,
                12,
                10,
            );
        }
    }
    std::fs::write(two.join("train/cat/README.txt"), b"not an image, ignored").unwrap();
    let data = data::load(&DataChoice::Dir(two.clone()), &Default::default()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (90, 30));
    assert_eq!(data.class_names, names);
    assert_eq!(
        (
            data.train.shape.channels,
            data.train.shape.height,
            data.train.shape.width
        ),
        (3, 12, 10)
    );
    for d in devices() {
        let acc = fit(&data, &d, "mlp", 15);
        assert!(acc > 0.8, "{} mlp on image folders: {acc}", d.kind());
    }
    // Resized on load.
    let opts = DirOptions {
        image_size: Some((8, 8)),
        ..DirOptions::default()
    };
    let small = data::load(&DataChoice::DirWith(two.clone(), opts), &Default::default()).unwrap();
    assert_eq!((small.train.shape.height, small.train.shape.width), (8, 8));

    // One level of grey class folders, split by a test fraction.
    let one = tmp("folders1");
    for (label, name) in names.iter().enumerate() {
        for i in 0..20 {
            let img = pattern(label, 1, 12, 12, &mut rng);
            write_png(&one.join(name).join(format!("{i:03}.png")), &img, 1, 12, 12);
        }
    }
    let opts = DirOptions {
        test_fraction: Some(0.25),
        ..DirOptions::default()
    };
    let data = data::load(&DataChoice::DirWith(one.clone(), opts), &Default::default()).unwrap();
    assert_eq!(
        (data.train.len(), data.test.len(), data.train.shape.channels),
        (45, 15, 1)
    );
    assert!(fit(&data, &Device::Cpu, "mlp", 15) > 0.8);
    // A broken image file: an error naming it.
    std::fs::write(one.join("owl/000.png"), b"garbage").unwrap();
    let e = data::load(&DataChoice::Dir(one.clone()), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("000.png"), "{e}");
    std::fs::remove_dir_all(two).ok();
    std::fs::remove_dir_all(one).ok();
}

#[test]
fn format_detection_and_forcing() {
    let empty = tmp("empty");
    let e = data::load(&DataChoice::Dir(empty.clone()), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unrecognised data directory") && e.contains("CIFAR-10"),
        "{e}"
    );
    assert_eq!(data::detect_format(&empty).ok(), None);
    let cifar = tmp("cifar-detect");
    write_cifar(&cifar, 20, 10);
    assert_eq!(data::detect_format(&cifar).unwrap(), Format::Cifar);
    let forced = DirOptions {
        format: Some(Format::Idx),
        ..DirOptions::default()
    };
    let e = data::load(
        &DataChoice::DirWith(cifar.clone(), forced),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    std::fs::remove_dir_all(empty).ok();
    std::fs::remove_dir_all(cifar).ok();
}

#[test]
fn broken_idx_directories_get_messages_naming_file_and_problem() {
    let dir = tmp("idx-bad");
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    let load = || {
        data::load(&DataChoice::Dir(dir.clone()), &Default::default())
            .unwrap_err()
            .to_string()
    };
    let img = |n: u32| idx(&[n, 2, 2], &vec![7u8; 4 * n as usize]);
    write("train-images-idx3-ubyte", img(4));
    write("train-labels-idx1-ubyte", idx(&[3], &[0, 1, 2]));
    write("t10k-images-idx3-ubyte", img(2));
    write("t10k-labels-idx1-ubyte", idx(&[2], &[0, 1]));
    // image/label count mismatch
    let e = load();
    assert!(
        e.contains("train-labels-idx1-ubyte")
            && e.contains("holds 3 labels")
            && e.contains("4 images"),
        "{e}"
    );
    // test labels outside the training classes
    write("train-labels-idx1-ubyte", idx(&[4], &[0, 1, 2, 1]));
    write("t10k-labels-idx1-ubyte", idx(&[2], &[0, 7]));
    let e = load();
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("test label 7 at index 1"),
        "{e}"
    );
    // a truncated gzip file
    write("t10k-labels-idx1-ubyte", idx(&[2], &[0, 1]));
    let gz = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&img(4)).unwrap();
        enc.finish().unwrap()
    };
    std::fs::remove_file(dir.join("train-images-idx3-ubyte")).unwrap();
    write("train-images-idx3-ubyte.gz", gz[..gz.len() / 2].to_vec());
    let e = load();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("corrupt or truncated gzip"),
        "{e}"
    );
    // an empty file
    write("train-images-idx3-ubyte.gz", Vec::new());
    let e = load();
    assert!(e.contains("too short for an IDX header"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}
