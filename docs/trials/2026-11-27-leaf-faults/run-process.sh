#!/usr/bin/env bash
# Leaf faults on process leaves (`herd leaf` children, SIGKILLed and started again) at 16
# leaves x 60 tasks, three runs each: F6 (killed between claim and commit), F7 (killed after
# the hub accepted, before the ledger row), F13 (killed; ledger truncated, write-ahead log
# lost, stale index.lock, broken git index while down). Run i uses seed i.
# Usage: run-process.sh BIN OUT REV   (BIN: a release build of revision REV)
set -u
BIN=$1; OUT=$2; REV=$3
run() { # name, then trial flags
  local name=$1; shift
  local dir="$OUT/$REV-$name"
  "$BIN" trial --agents 16 --tasks-per-agent 60 --seed "$SEED" --leaves process --out "$dir" "$@" > "$dir.stdout" 2>&1
  echo "rc=$?" >> "$dir.stdout"
  mv "$dir.stdout" "$dir/stdout.txt"
  grep -E "fault F|    task|verdict|rc=" "$dir/stdout.txt" | sed "s|^|$name: |"
}
for i in 1 2 3; do
  SEED=$i
  run process-f6-kill-$i --faults 'leaf-kill@commits=300+2s'
  run process-f7-halt-$i --faults 'leaf-halt@commits=300+2s'
  run process-f13-damage-$i --faults 'leaf-damage@commits=300+2s'
done
