//! A trial that fails after its bus and hub are up leaves nothing running: here process leaves
//! are asked for without a binary to run them, an error only the leaf-opening step can raise.

use herd_trial::{Placement, RunOptions, TrialConfig, TrialError};

/// Live child processes of this test process whose command line contains `needle`.
fn children_named(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = rest.split(' ');
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == me && state != "Z" && String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_after_start_stops_the_bus_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrialConfig {
        agents: 2,
        tasks_per_agent: 1,
        leaves: Placement::Process,
        out: Some(dir.path().to_path_buf()),
        ..TrialConfig::default()
    };
    let before = children_named("nats-server");
    let err = herd_trial::run_with(config, RunOptions::default())
        .await
        .err()
        .expect("process leaves without a binary cannot run");
    assert!(matches!(err, TrialError::LeafProcess { .. }), "{err}");
    // The hub had written its repository: the error came after start.
    assert!(std::fs::read_dir(dir.path()).unwrap().count() > 0);
    let after = children_named("nats-server");
    let leaked: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(leaked.is_empty(), "nats-server still running: {leaked:?}");
}
