//! rt-model against the real ONNX Runtime library: outputs, signatures and every load error.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fixture, library, options, MLP_OUT, ROWS, TREE_OUT};
use rt_core::model::{PredictError, Predictor};
use rt_model::{ModelError, ModelOptions, OnnxModel, Optimization};

#[test]
fn mlp_and_tree_match_python_onnxruntime() {
    for (name, expected) in [("mlp_4.onnx", MLP_OUT), ("tree_4.onnx", TREE_OUT)] {
        for optimization in [Optimization::Disable, Optimization::All] {
            let opts = ModelOptions {
                optimization,
                ..options()
            };
            let mut model = OnnxModel::load(fixture(name), &opts).unwrap();
            assert_eq!((model.input_width(), model.output_width()), (4, 1));
            for (row, want) in ROWS.iter().zip(expected) {
                let got = model.predict(row).unwrap();
                assert_eq!(got.len(), 1);
                assert!(
                    (got[0] - want).abs() <= 1e-6,
                    "{name}: {} vs {want}",
                    got[0]
                );
            }
        }
    }
}

#[test]
fn predictor_trait_and_repeated_calls_are_stable() {
    let mut model = OnnxModel::load(fixture("mlp_4.onnx"), &options()).unwrap();
    assert!(model.runtime().version.starts_with("1."));
    let predictor: &mut dyn Predictor = &mut model;
    let first = predictor.predict(&ROWS[1]).unwrap()[0];
    for _ in 0..100 {
        predictor.predict(&ROWS[0]).unwrap();
    }
    assert_eq!(predictor.predict(&ROWS[1]).unwrap()[0], first);
    assert_eq!(
        predictor.predict(&[1.0; 3]).unwrap_err(),
        PredictError::Width {
            expected: 4,
            got: 3
        }
    );
}

#[test]
fn two_intra_threads_give_the_same_outputs() {
    let opts = ModelOptions {
        intra_threads: 2,
        ..options()
    };
    let mut model = OnnxModel::load(fixture("tree_4.onnx"), &opts).unwrap();
    for (row, want) in ROWS.iter().zip(TREE_OUT) {
        assert!((model.predict(row).unwrap()[0] - want).abs() <= 1e-6);
    }
}

#[test]
fn a_symlinked_library_is_the_same_library() {
    let dir = std::env::temp_dir().join(format!("rt-model-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("libonnxruntime.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(library(), &link).unwrap();
    let opts = ModelOptions {
        library_path: Some(link),
        ..options()
    };
    let model = OnnxModel::load(fixture("mlp_4.onnx"), &opts).unwrap();
    assert_eq!(
        model.runtime().path,
        std::fs::canonicalize(library()).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn load_err(model: &std::path::Path, opts: &ModelOptions) -> ModelError {
    OnnxModel::load(model, opts).unwrap_err()
}

#[test]
fn model_errors_name_the_file_and_the_problem() {
    let missing = fixture("no_such_model.onnx");
    let err = load_err(&missing, &options());
    assert!(matches!(err, ModelError::ModelMissing { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("model file {} does not exist", missing.display())
    );

    let garbage = fixture("make_models.py");
    let err = load_err(&garbage, &options());
    assert!(matches!(err, ModelError::ModelUnreadable { .. }), "{err}");
    assert!(
        err.to_string().contains("make_models.py cannot be read"),
        "{err}"
    );

    let err = load_err(&fixture("double_4.onnx"), &options());
    assert!(matches!(err, ModelError::Signature { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("input X is Tensor<f64>(dyn, 4): expected float32"),
        "{err}"
    );

    let opts = ModelOptions {
        output: Some("proba".into()),
        ..options()
    };
    let err = load_err(&fixture("mlp_4.onnx"), &opts);
    assert!(
        err.to_string()
            .ends_with("no output proba (outputs: variable Tensor<f32>(dyn, 1))"),
        "{err}"
    );

    let opts = ModelOptions {
        intra_threads: 0,
        ..options()
    };
    let err = load_err(&fixture("mlp_4.onnx"), &opts);
    assert_eq!(
        err.to_string(),
        "invalid model options: intra_threads must be at least 1"
    );
    assert!(Optimization::parse("fast").is_err());
    assert_eq!(Optimization::parse("basic").unwrap(), Optimization::Basic);
}

#[test]
fn library_errors_are_errors_not_panics() {
    let with = |path: std::path::PathBuf| ModelOptions {
        library_path: Some(path),
        ..ModelOptions::default()
    };
    let model = fixture("mlp_4.onnx");

    let err = load_err(&model, &with("/nonexistent/libonnxruntime.so".into()));
    assert!(matches!(err, ModelError::LibraryNotFound { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("/nonexistent/libonnxruntime.so (from the given path) does not exist"));

    // A file that is not a shared library at all.
    let err = load_err(&model, &with(fixture("make_models.py")));
    assert!(matches!(err, ModelError::LibraryLoad { .. }), "{err}");

    // A real shared library that is not ONNX Runtime (shipped beside it in the wheel).
    let other = library().with_file_name("libonnxruntime_providers_shared.so");
    let err = load_err(&model, &with(other.clone()));
    assert!(matches!(err, ModelError::NotOnnxRuntime { .. }), "{err}");
    assert!(err
        .to_string()
        .ends_with("is not an ONNX Runtime library: it does not export OrtGetApiBase"));

    let info = rt_model::probe(&library()).unwrap();
    assert!(info.version.starts_with("1."));
    assert_eq!(info.api_version, rt_model::MIN_MINOR);
}
