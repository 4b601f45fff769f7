//! The project's Python virtualenv (python3 with the pins of
//! `hack/python/requirements.txt`), for tests and benchmarks that run Python
//! clients. `hack/python/venv` creates it when needed, once per process.
//!
//! Use it from a test file with `mod python_venv;`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The virtualenv's interpreter; the error says what `hack/python/venv` reported.
pub fn python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(create).clone()
}

fn create() -> Result<PathBuf, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hack/python/venv");
    let out = Command::new(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let venv = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let python = venv.join("bin/python");
    if python.exists() {
        Ok(python)
    } else {
        Err(format!("{} has no bin/python", venv.display()))
    }
}
