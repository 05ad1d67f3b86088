#!/usr/bin/env bash
# --mode shared at 16 x 30 (default think): the conflict rule with its default budget, with no
# budget (every conflict fails its task by rule), and on the merge queue.
# Usage: run.sh BIN OUT REV   (BIN: a release build of revision REV)
set -u
BIN=$1; OUT=$2; REV=$3
run() { # name, then trial flags
  local name=$1; shift
  local dir="$OUT/$REV-$name"
  "$BIN" trial --mode shared --out "$dir" "$@" > "$dir.stdout" 2>&1
  echo "rc=$?" >> "$dir.stdout"
  mv "$dir.stdout" "$dir/stdout.txt"
  grep -E "conflicts:|tasks closed|verdict" "$dir/stdout.txt" | sed "s|^|$name: |"
}
for i in 1 2 3; do
  run redo8-race-$i
  run redo0-race-$i --conflict-redos 0
  run redo8-queue-$i --hub queue
done
