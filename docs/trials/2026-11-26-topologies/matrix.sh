#!/usr/bin/env bash
# {in-process, process} x {direct, leafnodes, cluster3}: the default trial xR and 64x10 xR64,
# interleaved so machine drift hits every cell alike.
set -u
BIN=$1; OUT=$2; R=${3:-3}; R64=${4:-2}
mkdir -p "$OUT"
cells() { for leaves in in-process process; do for bus in direct leafnodes cluster3; do echo "$leaves $bus"; done; done; }
for i in $(seq 1 "$R"); do
  cells | while read -r leaves bus; do
    d="$OUT/default-$leaves-$bus-$i"
    "$BIN" --leaves "$leaves" --bus "$bus" --out "$d" > "$d.stdout" 2>&1; echo "default $leaves $bus $i rc=$?" >> "$OUT/runs.log"
  done
done
for i in $(seq 1 "$R64"); do
  cells | while read -r leaves bus; do
    d="$OUT/n64-$leaves-$bus-$i"
    "$BIN" --leaves "$leaves" --bus "$bus" --agents 64 --tasks-per-agent 10 --out "$d" > "$d.stdout" 2>&1; echo "n64 $leaves $bus $i rc=$?" >> "$OUT/runs.log"
  done
done
