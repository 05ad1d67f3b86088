#!/usr/bin/env bash
# Runs the trial sweep of docs/trials and prints one Markdown table row per run.
#   scripts/sweep.sh OUT_DIR [N ...]          (default N: 4 8 16 32 64)
# Each N runs twice: default think time (10-100 ms) and think 0 (tight loop). Uses the
# release build of the herd example; every run's outputs stay under OUT_DIR/<label>/.
set -euo pipefail
out=${1:?usage: scripts/sweep.sh OUT_DIR [N ...]}
shift || true
ns=("$@")
[ ${#ns[@]} -gt 0 ] || ns=(4 8 16 32 64)
cd "$(dirname "$0")/.."
cargo build --release --example herd >&2
bin=target/release/examples/herd
echo "| N | think ms | completion | hub commits | hub commits/s | p50 commit ms | p99 commit ms | fork retries | retries/commit | pulls/commit | coalesced | runtime s | history |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${ns[@]}"; do
  for think in 10-100 0; do
    label="n${n}-think${think}"
    "$bin" --agents "$n" --think-ms "$think" --out "$out/$label" > "$out/$label.stdout" 2>&1 || true
    python3 - "$out/$label/results.json" "$n" "$think" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r["counters"]; l = r["latency"]["commit"]
commits = max(c["hub_commits"], 1)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['completion']*100:.1f}% | {c['hub_commits']} | {r['hub_commits_per_sec']:.1f} | "
      f"{l['p50_ms']:.1f} | {l['p99_ms']:.1f} | {c['fork_retries']} | {c['fork_retries']/commits:.2f} | "
      f"{c['broadcasts_pulled']/commits:.2f} | {c['broadcasts_skipped_coalesced']} | {r['runtime_secs']:.1f} | {r['history_check']['verdict']} |")
PY
  done
done
