//! An ONNX model trained by `models/train.py` on the simulator's labelled faults, with the
//! script's own scores for held-out windows, as a user trains one.

use std::path::PathBuf;
use std::process::Command;

use crate::repo_root;
use crate::service::binary;

/// A trained model in a temporary directory.
pub struct TrainedModel {
    /// The ONNX file.
    pub model: PathBuf,
    /// Held-out windows and the script's scores for them: `{"windows":[[…]],"scores":[…]}`.
    pub check: serde_json::Value,
    _dir: tempfile::TempDir,
}

/// The Python that has `models/requirements.txt`: `models-python`, which `scripts/tools.sh`
/// installs (and `scripts/test.sh` puts on PATH), else in its default place.
fn python() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("models-python"))
            .find(|p| p.is_file())
    });
    let path = on_path.unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        PathBuf::from(home).join(".cache/sensor-pipeline/bin/models-python")
    });
    assert!(
        path.is_file(),
        "models-python is not installed: run scripts/tools.sh (scripts/test.sh does)"
    );
    path
}

/// Trains a model on `readings` simulator readings of `seed`, for windows of 10.
pub fn train(readings: u32, seed: u32) -> TrainedModel {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    let check = dir.path().join("check.json");
    let output = Command::new(python())
        .arg(repo_root().join("models/train.py"))
        .arg("--simulator")
        .arg(binary("sensor-simulator"))
        .arg("--out")
        .arg(&model)
        .arg("--check")
        .arg(&check)
        .args([
            "--readings",
            &readings.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .expect("models/train.py runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "models/train.py failed: {stderr}");
    println!("models/train.py: {}", stderr.trim());
    let check = serde_json::from_slice(&std::fs::read(&check).unwrap()).unwrap();
    TrainedModel {
        model,
        check,
        _dir: dir,
    }
}
