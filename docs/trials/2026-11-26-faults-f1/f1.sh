#!/usr/bin/env bash
# F1 by hand: an external nats-server, SIGKILLed 2.5 s into the trial and restarted 1 s later on
# the same store and port. Usage: f1.sh BIN OUT
set -u
BIN=$1; OUT=$2; NS=${NS:-$HOME/.cache/herd/nats-server-2.15.1/nats-server}  # herd provisions it there
mkdir -p "$OUT"; PORT=17500
"$NS" -js -sd "$OUT/js" -a 127.0.0.1 -p $PORT -l "$OUT/nats.log" & NPID=$!
sleep 0.5
NATS_URL=nats://127.0.0.1:$PORT "$BIN" --agents 8 --tasks-per-agent 60 --out "$OUT/run" > "$OUT/stdout.txt" 2>&1 &
TPID=$!
sleep 2.5; kill -9 $NPID; sleep 1
"$NS" -js -sd "$OUT/js" -a 127.0.0.1 -p $PORT -l "$OUT/nats2.log" & NPID=$!
wait $TPID; echo "rc=$?" >> "$OUT/stdout.txt"
kill $NPID; wait $NPID 2>/dev/null
