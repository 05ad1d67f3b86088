#!/usr/bin/env bash
# F4 (hub restart, at once and at each fail point) and F10 (link faults on the hub and bus
# links) at 16 leaves x 60 tasks, three runs each, through the fault driver.
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
  run f4-hub-$i --faults 'hub-restart@commits=300+1s'
  run f4-pack-written-$i --faults 'hub-restart@commits=300+1s:pack-written'
  run f4-ref-updated-$i --faults 'hub-restart@commits=300+1s:ref-updated'
  run f10-bus-stall-$i --faults 'link-stall@commits=300+2s'
  run f10-hub-stall-$i --faults 'link-stall@commits=300+2s:hub'
  run f10-hub-delay-$i --faults 'link-delay@commits=300+3s:hub'
  run f10-bus-delay-$i --faults 'link-delay@commits=300+3s'
  run f10-bus-reset-$i --faults 'link-reset@commits=300+1s'
  run f10-hub-reset-$i --faults 'link-reset@commits=300+1s:hub'
done
