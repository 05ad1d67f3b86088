#!/bin/sh
# The runs behind report.md, in the order they were made. HERD is the release binary of the
# revision named in each results.json (cargo build --release --example herd; copied aside).
# Run from the repository root. Nothing else ran on the machine meanwhile.
set -u
HERD=${HERD:?path to the herd binary}
D=docs/trials/2026-11-27-scale
mkdir -p $D/default $D/default-tmpfs $D/scale

# 1. The sweep: the floor, then N x sync x hub (tight loop) and the default think time at N=16.
#    Run with d12b45e (kept as sweep-d12b45e/), then again with 8a24e48 after the fetch-sync
#    fix (sweep/); stdout moved into the directory afterwards.
$HERD --out $D/sweep sweep --default-think > $D/sweep.stdout 2>&1

# 2. The default trial, 10 runs per hub mode, interleaved (scratch in the system temp dir).
for i in 01 02 03 04 05 06 07 08 09 10; do
  for h in race queue; do
    $HERD --hub $h --out $D/default/$h-$i > $D/default/$h-$i.stdout 2>&1
  done
done

# 3. The same with the scratch on tmpfs, 5 runs per mode: what the file system costs.
for i in 01 02 03 04 05; do
  for h in race queue; do
    TMPDIR=/dev/shm $HERD --hub $h --out $D/default-tmpfs/$h-$i > $D/default-tmpfs/$h-$i.stdout 2>&1
  done
done

# 4. N = 64 x 10 and N = 256 x 10, both hub modes, default think time.
for n in 64 256; do
  for h in race queue; do
    $HERD --agents $n --tasks-per-agent 10 --hub $h --out $D/scale/n$n-$h > $D/scale/n$n-$h.stdout 2>&1
  done
done
