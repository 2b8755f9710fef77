#!/usr/bin/env bash
# What a look at the operator view costs under load: 5,000 idle
# connections held (`strand bench hold`) and a fan-out running (1,000
# subscribers × 100 msg/s, as in docs/bench.sh), its p99 measured with and
# without a client polling GET /admin/stats once a second (what the page
# does), alternating rounds, medians printed. Take the heavy lock:
#
#   flock /tmp/strand-heavy.lock docs/admin_cost.sh
#
# ROUNDS (default 6, 3 each way), MESSAGES (default 1000: 10 s a run),
# HOLD (default 5000), BIN (default target/release/strand); SHOT_CMD, if
# set, runs with the server's address during the last round (the README's
# screenshot of /admin under load was taken so).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/strand}
ROUNDS=${ROUNDS:-6}
MESSAGES=${MESSAGES:-1000}
HOLD=${HOLD:-5000}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

"$BIN" serve --bind 127.0.0.1:0 --data-dir "$WORK/data" --log-level info \
    --max-connections 20000 2>"$WORK/server.log" &
for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
ADDR=$(grep -o "listening on [0-9.:]*" "$WORK/server.log" | awk '{print $3}')
"$BIN" bench hold --url "ws://$ADDR/ws" --clients "$HOLD" --duration 3600 -q \
    >"$WORK/hold.txt" 2>"$WORK/hold.err" &
for _ in $(seq 600); do grep -q "connected" "$WORK/hold.err" 2>/dev/null && break; sleep 0.1; done
echo "server $ADDR, $(curl -s "http://$ADDR/healthz")"

poll() { while :; do curl -s -o /dev/null -w '%{time_total}\n' "http://$ADDR/admin/stats" >>"$WORK/polls.txt"; sleep 1; done; }
for r in $(seq "$ROUNDS"); do
    mode=$([[ $((r % 2)) == 1 ]] && echo without || echo with)
    poller=
    if [[ $mode == with ]]; then poll & poller=$!; fi
    if [[ $r == "$ROUNDS" && -n ${SHOT_CMD:-} ]]; then (sleep 2; $SHOT_CMD "$ADDR") & shot=$!; fi
    "$BIN" bench fanout --url "ws://$ADDR" --subscribers 1000 --messages "$MESSAGES" --rate 100 \
        --room "cost$r" -q --json "$WORK/r$r.json" >/dev/null 2>&1
    [[ -n $poller ]] && kill "$poller" && wait "$poller" 2>/dev/null || true
    p99=$(jq -r '.latency_us.p99' "$WORK/r$r.json")
    p50=$(jq -r '.latency_us.p50' "$WORK/r$r.json")
    lost=$(jq -r '.delivery.lost' "$WORK/r$r.json")
    echo "round $r $mode polling: p50 ${p50} µs, p99 ${p99} µs, lost $lost, $(curl -s "http://$ADDR/healthz")"
    echo "$mode $p50 $p99" >>"$WORK/rounds.txt"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for mode in without with; do
    p50=$(awk -v m=$mode '$1==m {print $2}' "$WORK/rounds.txt" | median)
    p99=$(awk -v m=$mode '$1==m {print $3}' "$WORK/rounds.txt" | median)
    echo "median $mode polling: p50 $p50 µs, p99 $p99 µs"
done
echo "GET /admin/stats with $HOLD+1001 connections: $(wc -l <"$WORK/polls.txt") requests, median $(median <"$WORK/polls.txt") s, max $(sort -n "$WORK/polls.txt" | tail -1) s"
echo "body: $(curl -s "http://$ADDR/admin/stats" | wc -c) bytes"
if [[ -n ${shot:-} ]]; then wait "$shot"; fi
