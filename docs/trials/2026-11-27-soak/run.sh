#!/usr/bin/env bash
# 30-minute soak at N = 16, open model 6 tasks/min per agent (fixed arrivals), default think.
# Run from the repository root with a release build of the revision named in results.json:
#   cargo build --release --example herd && docs/trials/2026-11-27-soak/run.sh
set -euo pipefail
HERD=${HERD:-target/release/examples/herd}
OUT=${OUT:-docs/trials/2026-11-27-soak/run}
"$HERD" --agents 16 --rate-per-agent 6 --duration 30m --sample-secs 10 --out "$OUT" | tee "$OUT.stdout.txt"
