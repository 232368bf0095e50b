//! `wgtrain export --onnx` and `wgtrain eval --logits` from the command line: the ONNX file decodes
//! with the generated types into the graph the checkpoint describes (opset, dynamic batch, metadata,
//! initializers named and shaped as the state_dict), and every bad request is a one-line error that
//! leaves nothing half-written. (onnx.checker and ONNX Runtime check the same files in
//! tests/python/onnx_check.py.)

mod common;

use common::cli::{assert_fails, assert_ok, assert_one_line_error, tmpdir, wgtrain};
use prost::Message;
use std::path::{Path, PathBuf};
use wgtrain::export::onnx::proto::{tensor_shape_proto::dimension, type_proto, ModelProto};

fn train(dir: &Path, how: &[&str]) -> PathBuf {
    let ckpt = dir.join("net.safetensors");
    let mut args = vec!["train"];
    args.extend_from_slice(how);
    args.extend_from_slice(&[
        "--embedded",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--train-size",
        "128",
        "--save",
        ckpt.to_str().unwrap(),
    ]);
    assert_ok(&wgtrain(&args));
    ckpt
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn onnx_file_holds_the_checkpoints_graph_and_metadata() {
    let dir = tmpdir("onnx-graph");
    let spec = "conv3x3x8p1s2nb,bn,relu,res(conv3x3x8p1,relu,conv3x3x8p1),relu,gap,fc10";
    let ckpt = train(&dir, &["--arch", spec]);
    let file = dir.join("net.onnx");
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--onnx",
        file.to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("opset 17"));
    let m = ModelProto::decode(std::fs::read(&file).unwrap().as_slice()).unwrap();
    assert_eq!(m.opset_import[0].version, Some(17));
    assert_eq!(m.producer_name.as_deref(), Some("wgtrain"));
    let g = m.graph.as_ref().unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    assert_eq!(
        ops,
        [
            "Sub",
            "Div",
            "Conv",
            "BatchNormalization",
            "Relu",
            "Conv",
            "Relu",
            "Conv",
            "Add",
            "Relu",
            "GlobalAveragePool",
            "Flatten",
            "Gemm",
            "Identity",
            "Softmax"
        ]
    );
    let conv = &g.node[2];
    let attr = |name: &str| conv.attribute.iter().find(|a| a.name() == name).unwrap();
    assert_eq!(attr("strides").ints, [2, 2]);
    assert_eq!(attr("pads").ints, [1, 1, 1, 1]);
    assert_eq!(conv.input.len(), 2, "no bias input for a conv without bias");
    // The input's batch dimension is symbolic, the rest fixed.
    let Some(type_proto::Value::TensorType(t)) = &g.input[0].r#type.as_ref().unwrap().value else {
        panic!("input is not a tensor")
    };
    let dims = &t.shape.as_ref().unwrap().dim;
    assert!(matches!(dims[0].value, Some(dimension::Value::DimParam(_))));
    let fixed: Vec<_> = dims[1..].iter().map(|d| d.value.clone()).collect();
    assert_eq!(
        fixed,
        [1, 28, 28].map(|v| Some(dimension::Value::DimValue(v)))
    );
    let outputs: Vec<&str> = g.output.iter().map(|o| o.name()).collect();
    assert_eq!(outputs, ["logits", "probabilities"]);
    // Initializers: the state_dict's float tensors under their names and shapes, plus the
    // normalisation; num_batches_tracked (no ONNX input) is left out.
    let (model, weights, meta) = wgtrain::checkpoint::load(&ckpt).unwrap();
    for t in model.params.iter().chain(&model.state).filter(|t| !t.int64) {
        let init = g.initializer.iter().find(|i| i.name() == t.name);
        let init = init.unwrap_or_else(|| panic!("no initializer {}", t.name));
        let dims: Vec<usize> = init.dims.iter().map(|&d| d as usize).collect();
        assert_eq!(dims, t.shape, "{}", t.name);
        assert_eq!(init.raw_data().len(), 4 * t.len(), "{}", t.name);
    }
    let w0 = g
        .initializer
        .iter()
        .find(|i| i.name() == "0.weight")
        .unwrap();
    let first = f32::from_le_bytes(w0.raw_data()[..4].try_into().unwrap());
    assert_eq!(first, weights.params[model.params[0].offset]);
    let props: std::collections::HashMap<&str, &str> = m
        .metadata_props
        .iter()
        .map(|p| (p.key(), p.value()))
        .collect();
    let names: Vec<String> = serde_json::from_str(props["class_names"]).unwrap();
    assert_eq!(names, meta.class_names);
    assert_eq!(props["wgtrain_arch"], spec);
    assert!(props["input"].contains("/ 255"), "{}", props["input"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_writes_logits_as_npy() {
    let dir = tmpdir("eval-logits");
    let ckpt = train(&dir, &["--model", "mlp"]);
    let npy = dir.join("logits.npy");
    let out = wgtrain(&[
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--embedded",
        "--device",
        "cpu",
        "--logits",
        npy.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "header padded to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'shape': (2000, 10)"), "{header}");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let values: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(values.len(), 2000 * 10);
    // The same logits the library computes for the first test images.
    let (model, params, meta) = wgtrain::checkpoint::load(&ckpt).unwrap();
    let data =
        wgtrain::data::load(&wgtrain::data::DataChoice::Embedded, &Default::default()).unwrap();
    let batcher = wgtrain::data::Batcher::new(&meta.normalization, model.input);
    let n = 5;
    let (mut x, mut y) = (vec![0f32; n * 784], vec![0u32; n]);
    batcher.fill(&data.test, &(0..n).collect::<Vec<_>>(), &mut x, &mut y);
    let mut exec = wgtrain::Device::Cpu
        .executor_from(&model, &params, wgtrain::nn::OptimConfig::adam(1e-3), n)
        .unwrap();
    let want = exec.logits(&x).unwrap();
    for (a, b) in values[..n * 10].iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_export_requests_are_one_line_errors_and_write_nothing() {
    let dir = tmpdir("onnx-errors");
    let ckpt = train(&dir, &["--model", "mlp"]);
    let ck = ckpt.to_str().unwrap();
    // No format asked for.
    assert_fails(&wgtrain(&["export", "--checkpoint", ck]), 2, "--pytorch");
    // A checkpoint that does not exist / is not a checkpoint.
    let missing = dir.join("missing.safetensors");
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        missing.to_str().unwrap(),
        "--onnx",
        dir.join("a.onnx").to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "missing.safetensors");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint at all").unwrap();
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        junk.to_str().unwrap(),
        "--onnx",
        dir.join("a.onnx").to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "junk.safetensors");
    // An output path that cannot be written: a directory, or a missing parent.
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        ck,
        "--onnx",
        dir.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "is a directory");
    let deep = dir.join("no/such/dir/net.onnx");
    let out = wgtrain(&[
        "export",
        "--checkpoint",
        ck,
        "--onnx",
        deep.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 2, "does not exist");
    assert!(!dir.join("a.onnx").exists());
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    // An existing file is replaced whole (atomic rename), never left half-written.
    let file = dir.join("net.onnx");
    std::fs::write(&file, b"old").unwrap();
    assert_ok(&wgtrain(&[
        "export",
        "--checkpoint",
        ck,
        "--onnx",
        file.to_str().unwrap(),
    ]));
    let m = ModelProto::decode(std::fs::read(&file).unwrap().as_slice()).unwrap();
    assert_eq!(m.graph.unwrap().name(), "mlp");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    std::fs::remove_dir_all(&dir).ok();
}
