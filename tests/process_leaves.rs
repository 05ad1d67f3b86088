//! Leaves as processes (`--leaves process`): exact counts and a passing history as in-process;
//! a leaf killed mid-run is named with its signal and fails the trial without hanging, and so is
//! a stopped one, once its silence passes the limit; SIGTERM
//! of the trial leaves no leaf or nats-server process behind (on a leaf-node layout: 4 servers).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{alive, descendants, herd, spawn_herd, wait_exit};

fn output_of(child: &mut std::process::Child) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

/// Waits until `pid` has `n` `herd leaf` children; returns their (pid, cmdline).
fn wait_leaves(pid: u32, n: usize) -> Vec<(u32, String)> {
    let start = Instant::now();
    loop {
        let leaves: Vec<_> = descendants(pid)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(" leaf ") && cmd.contains("--controlled"))
            .collect();
        if leaves.len() == n {
            return leaves;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "leaves never all started: {leaves:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn process_leaves_count_exactly_and_the_history_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().to_str().unwrap();
    let out = herd(
        &[
            "--agents",
            "4",
            "--tasks-per-agent",
            "5",
            "--leaves",
            "process",
            "--out",
            out_path,
            "--keep",
        ],
        &[],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    let c = &results["counters"];
    for (key, want) in [
        ("tasks_total", 20),
        ("tasks_closed", 20),
        ("hub_commits", 20),
        ("claims_won", 20),
        ("commits_on_trunk", 20),
        ("commits_lost", 0),
    ] {
        assert_eq!(c[key].as_u64(), Some(want), "{key} in {c}");
    }
    assert_eq!(results["config"]["leaves"], "process");
    // Each child measured itself.
    let usage = &results["leaf_processes"];
    assert_eq!(usage["processes"].as_u64(), Some(4), "{usage}");
    assert!(
        usage["rss_peak_kib_p50"].as_u64().unwrap() > 1024,
        "{usage}"
    );
    assert!(
        stdout.contains("leaf processes:     4 (peak RSS"),
        "{stdout}"
    );
    assert_eq!(
        results["history_check"]["verdict"], "pass",
        "{}",
        results["history_check"]
    );
    // Every leaf wrote its own history; merged into events.jsonl, every task closes once.
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let closes = events
        .lines()
        .filter(|l| l.contains(r#""op":"close""#) && l.contains(r#""phase":"ok""#))
        .count();
    assert_eq!(closes, 20);
    for i in 0..4 {
        assert!(
            dir.path()
                .join(format!("leaf-events/leaf-{i}.jsonl"))
                .is_file()
        );
    }
    // The offline re-check agrees.
    let check = herd(&["check", out_path], &[]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// Starts a 3-leaf process trial, sends `signal` to leaf-1 once it is working, and returns the
/// trial's exit status, stdout and the leaves' pids.
fn signal_leaf_1_mid_run(signal: i32) -> (std::process::ExitStatus, String, Vec<(u32, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut trial = spawn_herd(&[
        "--agents",
        "3",
        "--tasks-per-agent",
        "60",
        "--think-ms",
        "40",
        "--leaves",
        "process",
        "--drain-timeout-secs",
        "10",
        "--leaf-silence-secs",
        "5",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let leaves = wait_leaves(trial.id(), 3);
    let (victim, _) = leaves
        .iter()
        .find(|(_, cmd)| cmd.contains("--slot 1 "))
        .unwrap()
        .clone();
    // Mid-run: once the leaf has started its tasks (its history has lines), not while it opens.
    let history = dir.path().join("leaf-events/leaf-1.jsonl");
    let start = Instant::now();
    while std::fs::metadata(&history).map_or(0, |m| m.len()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "leaf-1 never started work"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on a pid we just read as the trial's child.
    unsafe { libc::kill(victim as i32, signal) };
    let status = wait_exit(&mut trial, Duration::from_secs(180));
    let (stdout, stderr) = output_of(&mut trial);
    (status, format!("{stdout}\nstderr:\n{stderr}"), leaves)
}

#[test]
fn a_leaf_killed_mid_run_is_named_and_the_trial_exits_1() {
    let (status, stdout, leaves) = signal_leaf_1_mid_run(libc::SIGKILL);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("gate leaf_processes: FAIL (leaf-1: killed by signal 9 (SIGKILL)"),
        "{stdout}"
    );
    for (pid, cmd) in leaves {
        assert!(!alive(pid), "leaf {pid} still running: {cmd}");
    }
}

/// A stopped leaf keeps its stdout open, so only its silence gives it away: the trial kills
/// it after --leaf-silence-secs and names it, rather than waiting for ever.
#[test]
fn a_stopped_leaf_is_killed_after_its_silence_and_named() {
    let (status, stdout, leaves) = signal_leaf_1_mid_run(libc::SIGSTOP);
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("leaf-1: silent for 5s (hung or stopped); killed"),
        "{stdout}"
    );
    for (pid, cmd) in leaves {
        assert!(!alive(pid), "leaf {pid} still running: {cmd}");
    }
}

#[test]
fn sigterm_stops_the_trial_and_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut trial = spawn_herd(&[
        "--bus",
        "leafnodes",
        "--agents",
        "3",
        "--tasks-per-agent",
        "200",
        "--think-ms",
        "40",
        "--leaves",
        "process",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    wait_leaves(trial.id(), 3);
    let everything = descendants(trial.id());
    assert!(
        everything
            .iter()
            .any(|(_, cmd)| cmd.contains("nats-server")),
        "{everything:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(trial.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut trial, Duration::from_secs(60));
    let (_, stderr) = output_of(&mut trial);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for (pid, cmd) in everything {
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(pid), "{pid} outlived the trial: {cmd}");
    }
}
