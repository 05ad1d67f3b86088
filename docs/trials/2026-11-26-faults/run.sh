#!/usr/bin/env bash
# One run per fault class and layout at 16 leaves x 60 tasks, through the fault driver.
# Usage: run.sh BIN OUT REV   (BIN: a release build of revision REV)
set -u
BIN=$1; OUT=$2; REV=$3
run() { # name, then trial flags
  local name=$1; shift
  local dir="$OUT/$REV-$name"
  "$BIN" trial --agents 16 --tasks-per-agent 60 --out "$dir" "$@" > "$dir.stdout" 2>&1
  echo "rc=$?" >> "$dir.stdout"
  mv "$dir.stdout" "$dir/stdout.txt"
  grep -E "fault F|verdict" "$dir/stdout.txt" | sed "s|^|$name: |"
}
for i in 1 2 3; do
  run f1-direct-$i --faults 'bus-kill@commits=300+1s'
  run f2-direct-$i --faults 'bus-stop@commits=300+3s'
  run f9-direct-$i --faults 'tip-replay@commits=300+3s'
done
for i in 1 2; do
  run f1-cluster3-node1-$i --bus cluster3 --faults 'bus-kill@commits=300+1s:node-1'
  run f1-process-$i --leaves process --faults 'bus-kill@commits=300+1s'
  run f2-leafnodes-local0-$i --bus leafnodes --leaves-per-server 4 --faults 'bus-stop@commits=300+3s:local-0'
done
