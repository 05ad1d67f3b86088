#!/usr/bin/env bash
# Leaf faults at 16 leaves x 60 tasks, three runs each, through the fault driver:
# F6 (crash between claim and commit; resumed inside its lease, and down past it),
# F7 (crash after the hub accepted, before the ledger row), F8 (paused past the lease
# while a standby takes over; race hub and merge queue), F11 (disk full; needs root),
# F13 (ledger truncated, stale index.lock, broken git index while down).
# Run i uses seed i (the leaf a fault hits is a seeded pick).
# Usage: run.sh BIN OUT REV   (BIN: a release build of revision REV)
set -u
BIN=$1; OUT=$2; REV=$3
run() { # name, then trial flags
  local name=$1; shift
  local dir="$OUT/$REV-$name"
  "$BIN" trial --agents 16 --tasks-per-agent 60 --seed "$SEED" --out "$dir" "$@" > "$dir.stdout" 2>&1
  echo "rc=$?" >> "$dir.stdout"
  mv "$dir.stdout" "$dir/stdout.txt"
  grep -E "fault F|    task|verdict|rc=" "$dir/stdout.txt" | sed "s|^|$name: |"
}
for i in 1 2 3; do
  SEED=$i
  run f6-kill-$i --faults 'leaf-kill@commits=300+2s'
  run f6-kill-lapsed-$i --claim-ttl-secs 2 --faults 'leaf-kill@commits=300+2500ms'
  run f7-halt-$i --faults 'leaf-halt@commits=300+2s'
  run f8-pause-race-$i --claim-ttl-secs 2 --faults 'leaf-pause@commits=300+4s'
  run f8-pause-queue-$i --claim-ttl-secs 2 --hub queue --faults 'leaf-pause@commits=300+4s'
  run f11-disk-full-$i --faults 'disk-full@commits=300+3s'
  run f13-damage-$i --faults 'leaf-damage@commits=300+2s'
done
