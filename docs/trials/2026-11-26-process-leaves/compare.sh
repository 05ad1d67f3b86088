#!/usr/bin/env bash
# Interleaved in-process vs process leaves: default trial ×R, 64×10 ×R64.
set -u
BIN=$1; OUT=$2; R=${3:-3}; R64=${4:-2}
mkdir -p "$OUT"
for i in $(seq 1 "$R"); do
  for where in in-process process; do
    d="$OUT/default-$where-$i"; mkdir -p "$(dirname "$d")"
    "$BIN" --leaves "$where" --out "$d" > "$d.stdout" 2>&1; echo "default $where $i rc=$?" >> "$OUT/runs.log"
  done
done
for i in $(seq 1 "$R64"); do
  for where in in-process process; do
    d="$OUT/n64-$where-$i"
    "$BIN" --leaves "$where" --agents 64 --tasks-per-agent 10 --out "$d" > "$d.stdout" 2>&1; echo "n64 $where $i rc=$?" >> "$OUT/runs.log"
  done
done
