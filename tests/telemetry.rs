//! OTLP export end to end: a smoke trial's spans arrive at an in-test OTLP/HTTP receiver, the
//! trace crosses leaf → hub, the summary equals an independent count of the exported spans,
//! the pre-flight refuses an HTML page, and a collector dying mid-run is reported, not hidden:
//! the run is INCONCLUSIVE (exit 3, I5). And I5 itself: the spans the collector stored equal
//! every leaf's ledger (`herd check`), across a leaf crash and restart, duplicates counted
//! once; a span missing from the collector fails it.

use std::collections::HashSet;
mod common;

use std::path::Path;
use std::process::Output;

use herd::trial::telemetry::receiver::{Mode, OtlpReceiver, attr, write_otlp_json};

/// Runs the example (blocking) with OTLP pointed at `endpoint`.
fn herd(args: &[&str], endpoint: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = endpoint
        .map(|e| ("OTEL_EXPORTER_OTLP_ENDPOINT", e))
        .into_iter()
        .collect();
    common::herd(args, &env)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_trial_spans_arrive_and_the_summary_equals_their_count() {
    let receiver = OtlpReceiver::start(Mode::Otlp).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let endpoint = receiver.endpoint();
    let dir = out.path().to_str().unwrap().to_string();
    let run = tokio::task::spawn_blocking(move || {
        herd(
            &["--agents", "4", "--tasks-per-agent", "5", "--out", &dir],
            Some(&endpoint),
        )
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stdout(&run));
    let r = results(out.path());
    let c = &r["counters"];
    let n = |k: &str| c[k].as_u64().unwrap();
    let spans = receiver.spans();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();

    // Exported spans, counted here independently of the trial.
    let commits = named("leaf.commit");
    assert_eq!(commits.len() as u64, n("hub_commits"));
    let syncs = named("leaf.sync_on_broadcast");
    assert_eq!(
        syncs.len() as u64,
        n("broadcasts_applied")
            + n("broadcasts_pulled")
            + n("broadcasts_skipped_idempotent")
            + n("broadcasts_skipped_coalesced")
            + n("broadcasts_deferred")
    );
    assert!(
        n("broadcasts_applied") > 0,
        "payload sync applies broadcasts"
    );
    let count = |list: &[&opentelemetry_proto::tonic::trace::v1::Span], key: &str, value: &str| {
        list.iter()
            .filter(|s| attr(s, key).as_deref() == Some(value))
            .count() as u64
    };
    assert_eq!(
        count(&syncs, "pull.skipped_idempotent", "true"),
        n("broadcasts_skipped_idempotent")
    );
    assert_eq!(
        count(&syncs, "pull.skipped_coalesced", "true"),
        n("broadcasts_skipped_coalesced")
    );
    assert_eq!(
        count(&syncs, "pull.applied", "true"),
        n("broadcasts_applied")
    );
    assert_eq!(
        count(&syncs, "pull.source", "payload"),
        n("broadcasts_applied"),
        "every applied broadcast names its source"
    );
    assert_eq!(
        syncs
            .iter()
            .filter(|s| attr(s, "pull.success").is_some())
            .count() as u64,
        n("broadcasts_pulled")
    );
    let claims = named("leaf.claim");
    assert_eq!(count(&claims, "outcome", "won"), n("claims_won"));
    assert_eq!(count(&claims, "outcome", "lost"), n("claims_lost"));
    let retries: u64 = commits
        .iter()
        .map(|s| {
            attr(s, "commit.fork_retries")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(retries, n("fork_retries"));

    // Attributes present.
    for s in &commits {
        for key in [
            "commit.oid",
            "commit.fork_retries",
            "commit.fork_retried",
            "commit.fork_retried_succeeded",
        ] {
            assert!(attr(s, key).is_some(), "leaf.commit lacks {key}");
        }
    }
    for s in &syncs {
        assert!(
            attr(s, "tip.oid").is_some_and(|o| o.len() == 40),
            "leaf.sync_on_broadcast lacks tip.oid"
        );
    }
    for name in [
        "herd.trial",
        "herd.task",
        "leaf.open",
        "leaf.close",
        "hub.upload_pack",
    ] {
        assert!(!named(name).is_empty(), "no {name} span exported");
    }

    // One trace across leaf → hub: every hub.receive_pack is a child of a leaf.commit.
    let commit_ids: HashSet<(Vec<u8>, Vec<u8>)> = commits
        .iter()
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect();
    let receives = named("hub.receive_pack");
    assert!(receives.len() as u64 >= n("hub_commits"));
    for s in &receives {
        assert!(
            commit_ids.contains(&(s.trace_id.clone(), s.parent_span_id.clone())),
            "hub.receive_pack without a leaf.commit parent"
        );
        assert!(attr(s, "push.accepted").is_some());
    }
    // Broadcast-driven syncs link to the push (a receive_pack's trace).
    let receive_traces: HashSet<&Vec<u8>> = receives.iter().map(|s| &s.trace_id).collect();
    let linked = syncs
        .iter()
        .filter(|s| s.links.iter().any(|l| receive_traces.contains(&l.trace_id)))
        .count();
    assert_eq!(
        linked,
        syncs.len(),
        "every sync span links to the push that caused it"
    );

    // The stdout summary reports the export.
    let text = stdout(&run);
    assert!(text.contains("spans failed:       0"), "{text}");
    let exported = r["telemetry"]["spans_exported"].as_u64().unwrap();
    assert_eq!(exported, spans.len() as u64, "every exported span arrived");
    // The whole trial is one trace: herd.trial is its root and holds every task's commit.
    let trial = named("herd.trial");
    assert_eq!(trial.len(), 1);
    assert!(trial[0].parent_span_id.is_empty(), "herd.trial is a root");
    assert!(
        commits.iter().all(|s| s.trace_id == trial[0].trace_id),
        "leaf.commit outside the trial's trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_refuses_an_html_page_and_no_trial_runs() {
    let receiver = OtlpReceiver::start(Mode::Html).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let (endpoint, dir) = (
        receiver.endpoint(),
        out.path().to_str().unwrap().to_string(),
    );
    let run = tokio::task::spawn_blocking(move || {
        herd(
            &["--agents", "2", "--tasks-per-agent", "2", "--out", &dir],
            Some(&endpoint),
        )
    })
    .await
    .unwrap();
    let text = stdout(&run);
    assert_eq!(run.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&receiver.traces_url()) && text.contains("text/html"),
        "names the endpoint and its content-type: {text}"
    );
    assert!(!out.path().join("results.json").exists(), "no trial ran");
    assert_eq!(
        receiver.requests(),
        1,
        "only the pre-flight reached the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_dying_mid_run_makes_the_trial_inconclusive_exit_3() {
    let receiver = OtlpReceiver::start(Mode::Otlp).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let (endpoint, dir) = (
        receiver.endpoint(),
        out.path().to_str().unwrap().to_string(),
    );
    let run = tokio::task::spawn_blocking(move || {
        herd(
            &["--agents", "3", "--tasks-per-agent", "6", "--out", &dir],
            Some(&endpoint),
        )
    });
    // The collector dies once the trial has started (the pre-flight passed, events are being
    // written): every span export after that fails.
    let events = out.path().join("events.jsonl");
    for _ in 0..3000 {
        if events.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(events.exists(), "the trial never started");
    receiver.stop();
    let run = run.await.unwrap();
    let text = stdout(&run);
    // The work itself completes; the trace does not, so the run cannot pass (I5): exit 3,
    // INCONCLUSIVE, end to end through the example.
    assert_eq!(run.status.code(), Some(3), "{text}");
    assert!(text.contains("verdict:            INCONCLUSIVE"), "{text}");
    let r = results(out.path());
    assert_eq!(r["counters"]["hub_commits"], 18);
    assert_eq!(r["passed"], false);
    assert_eq!(r["history_check"]["verdict"], "inconclusive");
    assert!(
        r["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["passed"] == true)
    );
    let failed = r["telemetry"]["spans_failed"].as_u64().unwrap();
    assert!(failed > 0, "failed exports must be counted: {text}");
    assert!(
        text.contains(&format!("spans failed:       {failed}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("I5: {failed} spans never reached")),
        "{text}"
    );
}

#[test]
fn no_endpoint_means_no_export_and_the_trial_runs() {
    let out = tempfile::tempdir().unwrap();
    let run = herd(
        &[
            "--agents",
            "2",
            "--tasks-per-agent",
            "2",
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let text = stdout(&run);
    assert_eq!(run.status.code(), Some(0), "{text}");
    assert!(
        text.contains("spans exported:     none (OTEL_EXPORTER_OTLP_ENDPOINT unset)"),
        "{text}"
    );
    assert!(results(out.path())["telemetry"]["endpoint"].is_null());
}

/// Process leaves export their own spans into the trial's trace: each `herd leaf` child's root
/// span is a child of the trial's context (TRACEPARENT), and their commits are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_leaves_export_into_the_trials_trace() {
    let receiver = OtlpReceiver::start(Mode::Otlp).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let endpoint = receiver.endpoint();
    let dir = out.path().to_str().unwrap().to_string();
    let run = tokio::task::spawn_blocking(move || {
        herd(
            &[
                "--agents",
                "3",
                "--tasks-per-agent",
                "4",
                "--leaves",
                "process",
                "--out",
                &dir,
            ],
            Some(&endpoint),
        )
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stdout(&run));
    let spans = receiver.spans();
    let trial: Vec<_> = spans.iter().filter(|s| s.name == "herd.trial").collect();
    assert_eq!(trial.len(), 1);
    let leaves: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "herd.leaf_process")
        .collect();
    assert_eq!(leaves.len(), 3, "one root span per leaf process");
    for leaf in &leaves {
        assert_eq!(
            leaf.trace_id, trial[0].trace_id,
            "a leaf process left the trace"
        );
    }
    let commits = spans.iter().filter(|s| s.name == "leaf.commit").count();
    assert_eq!(commits, 12, "every child's commits exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i5_the_collectors_spans_equal_every_ledger_and_a_missing_span_fails_it() {
    let receiver = OtlpReceiver::start(Mode::Otlp).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let endpoint = receiver.endpoint();
    let dir = out.path().to_str().unwrap().to_string();
    let run = tokio::task::spawn_blocking(move || {
        herd(
            &[
                "--agents",
                "4",
                "--tasks-per-agent",
                "6",
                "--keep",
                // A leaf crashes after the hub accepted its push and is opened again: its
                // halted commit span names no commit, the resumed one does.
                "--faults",
                "leaf-halt@commits=6+500ms:leaf-1",
                "--out",
                &dir,
            ],
            Some(&endpoint),
        )
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stdout(&run));
    let spans = receiver.spans();
    let check = |spans_file: &Path| {
        let out = common::herd(
            &[
                "check",
                out.path().to_str().unwrap(),
                "--spans",
                spans_file.to_str().unwrap(),
            ],
            &[],
        );
        (out.status.code(), stdout(&out))
    };
    // As the collector stored them, every batch delivered twice (an OTLP retry): I5 counts
    // each span id once.
    let stored = out.path().join("collector.jsonl");
    write_otlp_json(&spans, 64, &stored).unwrap();
    let once = std::fs::read_to_string(&stored).unwrap();
    std::fs::write(&stored, format!("{once}{once}")).unwrap();
    let (code, text) = check(&stored);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("14 invariants"), "I5 was checked: {text}");

    // The collector lost one landed commit's span: I5 names the ledger row it cannot find.
    let lost = spans
        .iter()
        .position(|s| s.name == "leaf.commit" && attr(s, "commit.oid").is_some())
        .unwrap();
    let oid = attr(&spans[lost], "commit.oid").unwrap();
    let mut short = spans.clone();
    short.remove(lost);
    let dropped = out.path().join("dropped.jsonl");
    write_otlp_json(&short, 64, &dropped).unwrap();
    let (code, text) = check(&dropped);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("I5:") && text.contains(&oid),
        "the missing span's commit is named: {text}"
    );
    // A spans file that is not there is inconclusive, not a pass.
    let (code, text) = check(&out.path().join("nowhere.jsonl"));
    assert_eq!(code, Some(2), "{text}");
}
