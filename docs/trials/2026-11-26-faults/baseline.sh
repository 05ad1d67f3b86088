#!/usr/bin/env bash
# The same shape (16 leaves x 60 tasks) without faults, one run per layout of run.sh.
# Usage: baseline.sh BIN OUT REV
set -u
BIN=$1; OUT=$2; REV=$3
run() {
  local name=$1; shift
  local dir="$OUT/$REV-$name"
  "$BIN" trial --agents 16 --tasks-per-agent 60 --out "$dir" "$@" > "$dir.stdout" 2>&1
  echo "rc=$?" >> "$dir.stdout"
  mv "$dir.stdout" "$dir/stdout.txt"
  grep -E "total runtime|verdict" "$dir/stdout.txt" | sed "s|^|$name: |"
}
run nofault-direct
run nofault-cluster3 --bus cluster3
run nofault-process --leaves process
run nofault-leafnodes --bus leafnodes --leaves-per-server 4
