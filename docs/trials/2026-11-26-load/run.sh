#!/usr/bin/env bash
# The load-model report's runs (2 cores), from the repository root with a release build:
#   cargo build --release --example herd && docs/trials/2026-11-26-load/run.sh
# 1. An open-model sweep: N = 4..64 at 30 and 120 tasks/min per agent, 30 s of schedule per
#    cell, payload sync, race hub; the index names each cadence's knee.
# 2. A shared-board trial at the default shape (16 × 30): leaves compete for one pool.
set -euo pipefail
HERD=${HERD:-target/release/examples/herd}
D=docs/trials/2026-11-26-load
"$HERD" --out "$D/open-sweep" sweep --agents 4,8,16,32,64 --sync payload --hub race \
  --rate 30,120 --schedule-secs 30 --floor-commits 500 | tee "$D/open-sweep.stdout.txt"
"$HERD" --board shared --out "$D/board" | tee "$D/board.stdout.txt"
