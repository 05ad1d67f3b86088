//! Embeds the git revision the binary is built from (`HERD_GIT_REVISION`): every results.json
//! names it, so a published number can be traced to the code that produced it.

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HERD_GIT_REVISION={revision}");
    // Rebuild when the checked-out commit or the working tree's state changes.
    for path in [
        "../../.git/HEAD",
        "../../.git/index",
        "../../.git/refs/heads",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
