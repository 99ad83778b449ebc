//! `scripts/lib.sh`, which `scripts/test` and `scripts/dev` source first: on a fresh machine its
//! virtualenv is empty, and every tool the scripts need must get installed from there.

use std::process::Command;

/// A package missing from a new virtualenv is installed, and the script goes on. (`pip show`
/// exits 1 for a missing package; under `set -o pipefail` that once ended `scripts/test`
/// silently right after it created `~/.cache/keyledger/venv`.)
#[test]
fn venv_install_installs_what_a_fresh_virtualenv_lacks() {
    let venv = std::env::temp_dir().join(format!("kl-venv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&venv);
    let lib = crate::deploy::root().join("scripts/lib.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1"; venv_install "$2" six; echo "went on""#)
        .arg("bash")
        .arg(&lib)
        .arg(&venv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "venv_install failed: {stderr}");
    assert!(stdout.contains("went on"), "the script stopped after venv_install: {stderr}");
    let shown = Command::new(venv.join("bin/pip")).args(["show", "six"]).output().unwrap();
    assert!(shown.status.success(), "six is not installed in {}", venv.display());
    std::fs::remove_dir_all(&venv).unwrap();
}
