//! Kestra's official Python client, kestrapy 2.0.3, against a real
//! `peregrine server` on a loopback port: the pytest suite in
//! `tests/kestrapy/`, which validates every answer strictly against the
//! client's models (see its README).
//!
//! The client runs from a virtualenv: `PEREGRINE_KESTRAPY_PYTHON` names its
//! python (`.ci/test` makes one), else `target/kestrapy-venv` is used, and
//! made from `tests/kestrapy/requirements.txt` when missing, so that
//! `cargo test --workspace` works on its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;

const USER: &str = "admin@kestra.io";
const PASSWORD: &str = "Kestrapy-Secret1";

fn run(command: &mut Command, what: &str) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(status.success(), "{what} failed ({status}): {command:?}");
}

/// The virtualenv's python, made first if it is missing.
fn python(manifest: &Path) -> PathBuf {
    if let Some(python) = std::env::var_os("PEREGRINE_KESTRAPY_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = manifest.join("../target/kestrapy-venv");
    let python = venv.join("bin/python");
    let requirements = manifest.join("tests/kestrapy/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let current = std::fs::read(&requirements).expect("the suite's requirements");
    if python.exists() && std::fs::read(&stamp).is_ok_and(|s| s == current) {
        return python;
    }
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "making the kestrapy virtualenv (python3 -m venv; Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "installing kestrapy into its virtualenv",
    );
    std::fs::write(&stamp, current).expect("the virtualenv's stamp");
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn kestras_python_client_works_against_the_server_with_strict_models() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = python(manifest);
    let server = Server::start(&[
        ("PEREGRINE_SERVER_BASIC_AUTH_USERNAME", USER),
        ("PEREGRINE_SERVER_BASIC_AUTH_PASSWORD", PASSWORD),
    ])
    .await;
    let suite = manifest.join("tests/kestrapy");
    let base = server.base.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEX"])
            .arg(&suite)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PEREGRINE_URL", base)
            .env("PEREGRINE_USER", USER)
            .env("PEREGRINE_PASSWORD", PASSWORD)
            .status()
            .expect("pytest runs")
    })
    .await
    .expect("the suite's thread");
    assert!(status.success(), "the kestrapy suite failed: {status}");
}
