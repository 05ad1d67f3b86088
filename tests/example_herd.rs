//! The `herd` example as a user runs it: exact counts in a smoke trial, stdout agreeing with
//! results.json, exit codes for bad config (2) and failed gates (1), and offline re-checks.

use std::collections::BTreeMap;
mod common;

use std::process::Output;

use common::herd;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `label: value` lines of the summary block.
fn summary(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn smoke_trial_counts_exactly_and_stdout_agrees_with_results_json() {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().to_str().unwrap();
    let out = herd(
        &[
            "--agents",
            "4",
            "--tasks-per-agent",
            "5",
            "--out",
            out_path,
            "--keep",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("results.json")).unwrap(),
    )
    .unwrap();
    let c = &results["counters"];
    let n = |k: &str| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("counter {k} missing"))
    };
    assert_eq!(n("hub_commits"), 20);
    assert_eq!(n("claims_won"), 20);
    assert_eq!(n("tasks_closed"), 20);
    assert_eq!(n("fork_unrecoverable"), 0);
    assert_eq!(n("commits_lost"), 0);
    assert_eq!(
        n("broadcasts_applied")
            + n("broadcasts_pulled")
            + n("broadcasts_skipped_idempotent")
            + n("broadcasts_skipped_coalesced")
            + n("broadcasts_deferred"),
        n("broadcasts_delivered")
    );
    // Payload sync: each leaf applied the other leaves' commits and held its own.
    assert_eq!(n("broadcasts_applied"), 60);
    assert_eq!(n("broadcasts_skipped_idempotent"), 20);
    assert_eq!(results["scale"]["hub_fetches"].as_u64(), Some(0));
    // Every leaf received every broadcast: 20 pushes × 4 leaves.
    assert_eq!(n("broadcasts_delivered"), 80);

    // Trunk length − seed, read from the kept hub repository itself.
    let repo = git2::Repository::open_bare(out_dir.path().join("state/hub")).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    assert_eq!(walk.count(), 21);

    // Every ledger closed its five tasks.
    for i in 0..4 {
        let ledger = rusqlite::Connection::open(
            out_dir
                .path()
                .join(format!("state/leaves/leaf-{i}/ledger.sqlite")),
        )
        .unwrap();
        let closed: i64 = ledger
            .query_row(
                "SELECT COUNT(*) FROM tasks WHERE state = 'closed'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(closed, 5, "leaf-{i}");
    }

    // The stdout block says what results.json says.
    let s = summary(&stdout);
    for (label, key) in [
        ("hub commits", "hub_commits"),
        ("fork retries", "fork_retries"),
        ("fork unrecoverable", "fork_unrecoverable"),
        ("claims won", "claims_won"),
        ("claims lost", "claims_lost"),
        ("broadcasts pulled", "broadcasts_pulled"),
        ("broadcasts applied (payload)", "broadcasts_applied"),
        (
            "broadcasts skipped (idempotent)",
            "broadcasts_skipped_idempotent",
        ),
        (
            "broadcasts skipped (coalesced)",
            "broadcasts_skipped_coalesced",
        ),
    ] {
        assert_eq!(
            s.get(label).map(String::as_str),
            Some(n(key).to_string().as_str()),
            "{label}"
        );
    }
    let p = &results["latency"]["commit"];
    assert_eq!(
        s["P50/P99 commit ms"],
        format!(
            "{:.1} / {:.1}",
            p["p50_ms"].as_f64().unwrap(),
            p["p99_ms"].as_f64().unwrap()
        )
    );
    assert!(
        stdout.contains("history check: PASS (13 invariants)"),
        "{stdout}"
    );
    assert_eq!(results["history_check"]["verdict"], "pass");
    assert!(
        results["environment"]["nats_server"]
            .as_str()
            .unwrap()
            .len()
            >= 5
    );
    assert!(
        results["environment"]["git"]
            .as_str()
            .unwrap()
            .starts_with("git version")
    );

    // The kept run re-checks offline…
    let check = herd(&["check", out_path], &[]);
    assert_eq!(check.status.code(), Some(0), "{:?}", text(&check));
    // …and a history with one close dropped fails, naming the task.
    let events = std::fs::read_to_string(out_dir.path().join("events.jsonl")).unwrap();
    let victim = events
        .lines()
        .find(|l| l.contains("\"op\":\"close\"") && l.contains("\"phase\":\"ok\""))
        .unwrap()
        .to_string();
    let task: serde_json::Value = serde_json::from_str(&victim).unwrap();
    let task = task["task"].as_str().unwrap().to_string();
    let edited: Vec<&str> = events.lines().filter(|l| *l != victim).collect();
    std::fs::write(
        out_dir.path().join("events.jsonl"),
        edited.join("\n") + "\n",
    )
    .unwrap();
    let check = herd(&["check", out_path], &[]);
    let (stdout, _) = text(&check);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("I1: task {task} was opened but never closed")),
        "{stdout}"
    );
}

#[test]
fn invalid_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("herd.toml");
    std::fs::write(&toml, "agents = 2\nthinking = 5\n").unwrap();
    // (flags, environment, the key the error must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--agents", "0"], vec![], "agents"),
        (vec!["--think-ms", "9-3"], vec![], "think_ms"),
        (vec![], vec![("HERD_AGENTS", "many")], "HERD_AGENTS"),
        (
            vec![],
            vec![("HERD_BYTES_PER_FILE", "10-5")],
            "bytes_per_file",
        ),
        (vec!["--config", toml.to_str().unwrap()], vec![], "thinking"),
        (vec!["--agents", "lots"], vec![], "--agents"),
        // The scale knobs, each from a flag and from the environment.
        (vec!["--sync", "gossip"], vec![], "--sync"),
        (vec![], vec![("HERD_SYNC", "gossip")], "HERD_SYNC"),
        (vec!["--hub", "lottery"], vec![], "--hub"),
        (vec![], vec![("HERD_HUB", "lottery")], "HERD_HUB"),
        (vec!["--fairness", "luck"], vec![], "--fairness"),
        (vec![], vec![("HERD_FAIRNESS", "luck")], "HERD_FAIRNESS"),
        (vec!["--turn-after", "0"], vec![], "turn_after"),
        (vec![], vec![("HERD_TURN_AFTER", "x")], "HERD_TURN_AFTER"),
        (
            vec!["--payload-max-bytes", "5000000"],
            vec![],
            "payload_max_bytes",
        ),
        (
            vec![],
            vec![("HERD_PAYLOAD_MAX_BYTES", "lots")],
            "HERD_PAYLOAD_MAX_BYTES",
        ),
        // The load model.
        (vec!["--rate-per-agent", "0"], vec![], "rate_per_agent"),
        (
            vec![],
            vec![("HERD_RATE_PER_AGENT", "often")],
            "HERD_RATE_PER_AGENT",
        ),
        (vec!["--arrivals", "bursty"], vec![], "--arrivals"),
        (vec![], vec![("HERD_ARRIVALS", "bursty")], "HERD_ARRIVALS"),
        // A soak needs a cadence; its duration must read as one.
        (vec!["--duration", "5m"], vec![], "duration"),
        (vec![], vec![("HERD_DURATION", "soon")], "HERD_DURATION"),
        (vec!["--duration", "soon"], vec![], "--duration"),
    ];
    for (args, env, key) in cases {
        let out = herd(&args, &env);
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?}: {stdout}{stderr}"
        );
        assert!(
            stderr.contains(key),
            "{args:?} {env:?}: stderr does not name {key}: {stderr}"
        );
    }
}

#[test]
fn a_failing_gate_exits_1_and_is_named() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = herd(
        &[
            "--agents",
            "2",
            "--tasks-per-agent",
            "2",
            "--max-p99-ms",
            "0",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("gate max_p99_ms: FAIL"), "{stdout}");
    assert!(stdout.contains("verdict:            FAIL"), "{stdout}");
}

#[test]
fn help_lists_every_knob() {
    let out = herd(&["--help"], &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    for flag in [
        "--agents",
        "--tasks-per-agent",
        "--files-per-task",
        "--bytes-per-file",
        "--think-ms",
        "--seed",
        "--mode",
        "--pace-per-min",
        "--rate-per-agent",
        "--arrivals",
        "--duration",
        "--sample-secs",
        "--claim-ttl-secs",
        "--drain-timeout-secs",
        "--out",
        "--keep",
        "--gate",
        "--max-p99-ms",
        "--max-commits-per-min",
        "--config",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn two_trials_against_one_external_server_via_nats_url_both_pass() {
    let server = herd::bus::NatsServer::start().unwrap();
    for run in 0..2 {
        let out_dir = tempfile::tempdir().unwrap();
        let out = herd(
            &[
                "--agents",
                "2",
                "--tasks-per-agent",
                "3",
                "--out",
                out_dir.path().to_str().unwrap(),
            ],
            &[("NATS_URL", server.url())],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "run {run}: {stdout}{stderr}");
        let results: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert!(
            results["environment"]["nats_server"]
                .as_str()
                .unwrap()
                .contains(server.url()),
            "the external server was used"
        );
        assert_eq!(results["counters"]["hub_commits"], 6);
    }
}
