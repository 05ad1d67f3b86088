#!/bin/sh
# Kept payload entries, before (caa2064) and after (8a24e48): same seed, interleaved, one
# binary after the other per case. BEFORE and AFTER are the two release binaries.
set -u
BEFORE=${BEFORE:?} AFTER=${AFTER:?}
D=docs/trials/2026-11-27-scale/kept-ab
mkdir -p $D
for i in 1 2; do
  for h in queue race; do
    for b in before after; do
      eval bin=\$$(echo $b | tr a-z A-Z)
      /usr/bin/time -f "%U %S %M" -o $D/n256x3-$h-$b-$i.time \
        $bin --agents 256 --tasks-per-agent 3 --hub $h --out $D/n256x3-$h-$b-$i > $D/n256x3-$h-$b-$i.stdout 2>&1
    done
  done
done
for i in 1 2 3 4; do
  for h in queue race; do
    for b in before after; do
      eval bin=\$$(echo $b | tr a-z A-Z)
      /usr/bin/time -f "%U %S %M" -o $D/default-$h-$b-$i.time \
        $bin --hub $h --out $D/default-$h-$b-$i > $D/default-$h-$b-$i.stdout 2>&1
    done
  done
done
