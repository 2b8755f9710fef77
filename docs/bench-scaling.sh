#!/usr/bin/env bash
# Measures `strand bench fanout` across instances sharing one Redis, side
# by side with one instance, for docs/SCALING.md.
#
# Each of RUNS rounds runs three set-ups, in an order that rotates from
# round to round, each with a fresh server and room:
#   local   one strand, in-process hub (no Redis)
#   redis1  one strand with --redis (every message through Redis)
#   redis2  two strands with --redis; subscribers split over both
#           (--spread-url), the publisher on the first
# and records deliveries/s, latency p50/p99, lost, and the CPU time that
# Redis and the strand processes used during the bench, over its wall
# time. Prints the medians as a Markdown table. Then measures Redis's
# memory: MEMORY USAGE of a room's keys after 100 messages of 64 bytes,
# and of the presence entries of 200 members (MEM_MEMBERS).
#
# Run it alone: flock /tmp/strand-heavy.lock docs/bench-scaling.sh
# Knobs (environment): RUNS (5), SUBS (1000), MSGS (500), RATE (100).
set -euo pipefail
trap 'echo "docs/bench-scaling.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SUBS=${SUBS:-1000}
MSGS=${MSGS:-500}
RATE=${RATE:-100}

cargo build --release --quiet --bin strand
BIN=target/release/strand
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.05; done
REDIS=redis://127.0.0.1:$RPORT

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
    local total=0
    for pid in "$@"; do
        local f
        f=$(sed 's/^.*) //' "/proc/$pid/stat")
        total=$((total + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# start_strand NAME ARGS...: starts a strand; sets PID_<NAME>, ADDR_<NAME>.
start_strand() {
    local name=$1
    shift
    "$BIN" serve --bind 127.0.0.1:0 --max-connections 4000 --log-level info \
        --data-dir "$WORK/data-$name" "$@" 2>"$WORK/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
        grep -q "listening on" "$WORK/$name.log" 2>/dev/null && break
        sleep 0.05
    done
    printf -v "PID_$name" %s "$pid"
    printf -v "ADDR_$name" %s "$(grep -o 'listening on [0-9.:]*' "$WORK/$name.log" | awk '{print $3}')"
    if [[ $* == *--redis* ]]; then
        until curl -s "http://$(grep -o 'listening on [0-9.:]*' "$WORK/$name.log" | awk '{print $3}')/healthz" | grep -q '"broker":"redis"'; do
            sleep 0.05
        done
    fi
}

stop_pids() { for pid in "$@"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done; }

j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$2" "$1"; }

# run MODE ROUND: one measured bench; appends "mode key value" lines.
run() {
    local mode=$1 round=$2 spread=() strands
    case $mode in
    local) start_strand a; strands=("$PID_a") ;;
    redis1) start_strand a --redis "$REDIS"; strands=("$PID_a") ;;
    redis2)
        start_strand a --redis "$REDIS"
        start_strand b --redis "$REDIS"
        strands=("$PID_a" "$PID_b")
        spread=(--spread-url "ws://$ADDR_b")
        ;;
    esac
    local r0 s0 t0 r1 s1 t1 out=$WORK/$mode-$round.json
    r0=$(cpu_ticks "$RPID")
    s0=$(cpu_ticks "${strands[@]}")
    t0=$(date +%s.%N)
    "$BIN" bench fanout --url "ws://$ADDR_a" "${spread[@]}" --subscribers "$SUBS" \
        --messages "$MSGS" --rate "$RATE" --room "fan$round$mode" --json "$out" -q >/dev/null
    t1=$(date +%s.%N)
    r1=$(cpu_ticks "$RPID")
    s1=$(cpu_ticks "${strands[@]}")
    stop_pids "${strands[@]}"
    local wall
    wall=$(echo "$t1 - $t0" | bc -l)
    {
        echo "$mode deliveries_per_s $(j "['deliveries_per_s']" "$out")"
        echo "$mode p50_ms $(echo "$(j "['latency_us']['p50']" "$out") / 1000" | bc -l)"
        echo "$mode p99_ms $(echo "$(j "['latency_us']['p99']" "$out") / 1000" | bc -l)"
        echo "$mode lost $(j "['delivery']['lost']" "$out")"
        echo "$mode formation_s $(j "['formation_s']" "$out")"
        echo "$mode redis_cpu_pct $(echo "100 * ($r1 - $r0) / $HZ / $wall" | bc -l)"
        echo "$mode strand_cpu_pct $(echo "100 * ($s1 - $s0) / $HZ / $wall" | bc -l)"
    } >>"$WORK/values"
    echo "round $round $mode: $(grep "^$mode " "$WORK/values" | tail -7 | awk '{printf "%s=%.2f ", $2, $3}')" >&2
}

MODES=(local redis1 redis2)
for round in $(seq "$RUNS"); do
    for i in 0 1 2; do
        run "${MODES[$(((round + i) % 3))]}" "$round"
    done
done

median() { grep "^$1 $2 " "$WORK/values" | awk '{print $3}' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "| $SUBS subscribers × $RATE msg/s ($MSGS messages), medians of $RUNS | one instance, in-process | one instance, Redis | two instances, Redis |"
echo "|---|---:|---:|---:|"
for key in deliveries_per_s p50_ms p99_ms lost formation_s strand_cpu_pct redis_cpu_pct; do
    printf "| %s | %.2f | %.2f | %.2f |\n" "$key" "$(median local $key)" "$(median redis1 $key)" "$(median redis2 $key)"
done

# Memory: rooms with 100 messages of 64 bytes, then members.
start_strand m --redis "$REDIS"
for r in 0 1 2 3 4; do
    "$BIN" bench fanout --url "ws://$ADDR_m" --subscribers 1 --messages 100 --size 64 \
        --rate 0 --grace 1 --room "mem$r" -q >/dev/null
done
usage() { redis-cli -p "$RPORT" MEMORY USAGE "$1" SAMPLES 0; }
echo
echo "Redis memory (MEMORY USAGE, bytes):"
echo "- a room's history after 100 messages of 64 bytes: $(usage strand:room:mem0:hist) (stream), $(usage strand:room:mem0:meta) (meta hash)"
MEMBERS=${MEM_MEMBERS:-200}
"$BIN" bench hold --url "ws://$ADDR_m/ws/memroom/holder" --clients "$MEMBERS" --duration 6 -q >/dev/null &
HOLD=$!
until curl -s "http://$ADDR_m/rooms/memroom/count" | grep -q "\"online\":$MEMBERS"; do sleep 0.1; done
INST=$(grep -o 'instance [0-9a-f]*' "$WORK/m.log" | awk '{print $2}')
echo "- $MEMBERS text members of one room: $(usage strand:room:memroom:who) (the room's presence hash), $(usage "strand:inst:$INST:who") (the instance's own list)"
wait "$HOLD"
stop_pids "$PID_m"

echo
echo "raw values:"
sort "$WORK/values"
