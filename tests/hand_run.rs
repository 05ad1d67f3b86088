//! The out-of-process topology as a person runs it from two shells: `herd hub` in one,
//! `herd leaf --join … --slot I` ×4 in the other; then `herd check` passes the run.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{herd, herd_bin, spawn_herd, wait_exit};

#[test]
fn a_hub_and_four_hand_started_leaves_complete_a_run_that_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut hub = spawn_herd(&[
        "hub",
        "--agents",
        "4",
        "--tasks-per-agent",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let join = out.join("join.json");
    let start = Instant::now();
    while !join.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hub never wrote its join file"
        );
        assert!(hub.try_wait().unwrap().is_none(), "hub exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let leaves: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(herd_bin())
                .args([
                    "leaf",
                    "--join",
                    join.to_str().unwrap(),
                    "--slot",
                    &i.to_string(),
                ])
                .env_remove("NATS_URL")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, leaf) in leaves.into_iter().enumerate() {
        let out = leaf.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "leaf {i}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("leaf-{i}: 5/5 tasks closed")),
            "{stdout}"
        );
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(hub.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut hub, Duration::from_secs(60));
    let mut stdout = String::new();
    hub.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("stopped after 20 commits"), "{stdout}");

    let check = herd(&["check", out.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS"), "{text}");
    // The join file holds secrets: owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&join).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "join file mode {mode:o}");
}
