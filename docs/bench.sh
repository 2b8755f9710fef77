#!/usr/bin/env bash
# Regenerates the results in docs/BENCHMARKS.md.
#
# Builds release binaries, then RUNS times: starts strand and the floor
# (examples/floor_echo.rs), runs each scenario against both side by side
# with `strand bench`, and records the figures; finally writes the medians
# between the GENERATED markers of docs/BENCHMARKS.md (the hand-written
# analysis around them is kept).
#
# Server and load generator share this machine, as the targets assume.
# Knobs (environment): RUNS (5), SHORT=1 for a quick smoke run with small
# sizes, OUT (docs/BENCHMARKS.md).
set -euo pipefail
trap 'echo "docs/bench.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
OUT=${OUT:-docs/BENCHMARKS.md}
if [[ ${SHORT:-0} == 1 ]]; then
    ECHO_SECS=1 HOLD_N=200 HOLD_SECS=4 CONNECT_SECS=1 BIG=100 FAN_N=100 FAN_K=100 ROOM_N=200 ROOM_K=10
else
    ECHO_SECS=5 HOLD_N=5000 HOLD_SECS=16 CONNECT_SECS=5 BIG=1000 FAN_N=1000 FAN_K=500 ROOM_N=4000 ROOM_K=50
fi
MAX_CONN=12000

echo "building release binaries..." >&2
cargo build --release --quiet --bin strand --example floor_echo
BIN=target/release/strand
# SERVER_BIN: the strand to measure (default: this tree's), e.g. a build of
# another branch; the load generator is always this tree's.
SERVER_BIN=${SERVER_BIN:-$BIN}
# SERVER_NOTE: how the header names the measured server.
SERVER_NOTE=${SERVER_NOTE:-"strand at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo '+changes')"}
FLOOR=target/release/examples/floor_echo

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/tail" "$WORK/vals"

# wait_line FILE PATTERN: waits (up to 60 s) for a line matching PATTERN.
wait_line() {
    for _ in $(seq 600); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

# start_strand: starts a fresh strand; sets SPID and SADDR.
start_strand() {
    # A fresh log: the old one names the previous server's port.
    rm -f "$WORK/strand.log"
    "$SERVER_BIN" serve --bind 127.0.0.1:0 --max-connections "$MAX_CONN" --log-level info \
        --data-dir "$WORK/data" --tail-dir "$WORK/tail" 2>"$WORK/strand.log" &
    SPID=$!
    PIDS+=("$SPID")
    wait_line "$WORK/strand.log" "listening on"
    SADDR=$(grep -o 'listening on [0-9.:]*' "$WORK/strand.log" | head -1 | awk '{print $3}')
}

# start_floor: starts a fresh floor_echo; sets FPID and FADDR.
start_floor() {
    rm -f "$WORK/floor.log"
    "$FLOOR" 127.0.0.1:0 >"$WORK/floor.log" 2>&1 &
    FPID=$!
    PIDS+=("$FPID")
    wait_line "$WORK/floor.log" "listening on"
    FADDR=$(grep -o 'listening on [0-9.:]*' "$WORK/floor.log" | head -1 | awk '{print $3}')
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# record FIGURE SERVER VALUE: one sample of a figure.
record() {
    awk -v v="$3" 'BEGIN { printf "%.6g\n", v }' >>"$WORK/vals/$1.$2"
}

# bench NAME ARGS...: runs `strand bench ARGS`, JSON in $WORK/NAME.json.
bench() {
    local name=$1
    shift
    "$BIN" bench "$@" -q --json "$WORK/$name.json" >"$WORK/$name.txt" 2>"$WORK/$name.err" || {
        echo "strand bench $* failed:" >&2
        cat "$WORK/$name.txt" "$WORK/$name.err" >&2
        return 1
    }
    local errors
    errors=$(jq '.errors.total' "$WORK/$name.json")
    if [[ $errors != 0 ]]; then
        echo "run $run, $name${side:+ ($side)}: client errors $(jq -c '.errors.kinds' "$WORK/$name.json")" |
            tee -a "$WORK/notes" >&2
    fi
}

j() { jq -r "$1" "$WORK/$2.json"; }

# delivered NAME: whether a fanout or tail run delivered anything (a server
# without rooms or follow refuses them: no figures then).
delivered() { [[ $(j '.delivery.delivered' "$1") -gt 0 ]]; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# hold_measure SERVER PID ADDR: 5,000 idle connections; RSS per connection
# and idle CPU of the server.
hold_measure() {
    local server=$1 pid=$2 addr=$3 before after t0 t1 hz
    hz=$(getconf CLK_TCK)
    before=$(rss_kib "$pid")
    "$BIN" bench hold --url "ws://$addr/ws" --clients "$HOLD_N" --duration "$HOLD_SECS" -q \
        --json "$WORK/hold.json" >"$WORK/hold.txt" 2>"$WORK/hold.err" &
    local bpid=$!
    wait_line "$WORK/hold.err" "^all .* connected"
    sleep 2
    after=$(rss_kib "$pid")
    t0=$(cpu_ticks "$pid")
    sleep 10
    t1=$(cpu_ticks "$pid")
    wait "$bpid"
    local n
    n=$(j .connected hold)
    record hold_rss_per_conn_kib "$server" "$(echo "($after - $before) / $n" | bc -l)"
    record hold_idle_cpu_pct "$server" "$(echo "($t1 - $t0) * 100 / $hz / 10" | bc -l)"
    record hold_connect_p99_ms "$server" "$(echo "$(j .connect_us.p99 hold) / 1000" | bc -l)"
    record hold_survivors "$server" "$(j .survivors hold)"
}

# each_side FN: runs FN SIDE ADDR for strand and the floor, back to back,
# strand first in odd runs and the floor first in even runs, so load from
# elsewhere on the machine falls on both alike.
each_side() {
    if (( run % 2 )); then
        side=strand "$1" strand "$SADDR"
        side=floor "$1" floor "$FADDR"
    else
        side=floor "$1" floor "$FADDR"
        side=strand "$1" strand "$SADDR"
    fi
}

echo1() {
    bench echo1 echo --url "ws://$2/ws" --clients 1 --duration "$ECHO_SECS"
    record echo1_rtt_p50_us "$1" "$(j .rtt_us.p50 echo1)"
    record echo1_rtt_p99_us "$1" "$(j .rtt_us.p99 echo1)"
}
echo100() {
    bench echo100 echo --url "ws://$2/ws" --clients 100 --duration "$ECHO_SECS"
    record echo100_msgs_per_s "$1" "$(j .msgs_per_s echo100)"
    record echo100_rtt_p99_us "$1" "$(j .rtt_us.p99 echo100)"
}
echo1000() {
    bench echo1000 echo --url "ws://$2/ws" --clients "$BIG" --duration "$ECHO_SECS"
    record echo1000_msgs_per_s "$1" "$(j .msgs_per_s echo1000)"
    record echo1000_rtt_p99_us "$1" "$(j .rtt_us.p99 echo1000)"
}
connect() {
    bench connect connect --url "ws://$2/ws" --threads 4 --duration "$CONNECT_SECS"
    record connect_per_s "$1" "$(j .handshakes_per_s connect)"
}

for run in $(seq "$RUNS"); do
    echo "run $run of $RUNS" >&2
    start_strand
    start_floor
    each_side echo1
    each_side echo100
    each_side echo1000
    each_side connect

    # Rooms and follow exist only in strand.
    if bench fanout fanout --url "ws://$SADDR" --subscribers "$FAN_N" --messages "$FAN_K" \
        --rate 100 --room fan$run && delivered fanout; then
        record fanout_deliveries_per_s strand "$(j .deliveries_per_s fanout)"
        record fanout_p99_ms strand "$(echo "$(j .latency_us.p99 fanout) / 1000" | bc -l)"
        record fanout_lost strand "$(j .delivery.lost fanout)"
    fi
    rm -f "$WORK/room.json"
    # Formation is bounded by --timeout: a room that has not formed by then
    # shows as the timeout and its missing join notices.
    if bench room fanout --url "ws://$SADDR" --subscribers "$ROOM_N" --messages "$ROOM_K" \
        --rate 10 --room big$run --timeout 30 && [[ $(j .connected room) -gt 0 ]]; then
        record room_formation_s strand "$(j .formation_s room)"
        record room_joins_missing strand "$(j '.join_notices.expected - .join_notices.received' room)"
    fi
    if [[ -f $WORK/room.json ]] && delivered room; then
        record room_p99_ms strand "$(echo "$(j .latency_us.p99 room) / 1000" | bc -l)"
        record room_lost strand "$(j .delivery.lost room)"
    fi
    : >"$WORK/tail/bench.log"
    if bench tail tail --url "ws://$SADDR" --file "$WORK/tail/bench.log" --clients 10 \
        --lines 200 --rate 100 && delivered tail; then
        record tail_p50_us strand "$(j .latency_us.p50 tail)"
        record tail_p99_us strand "$(j .latency_us.p99 tail)"
        record tail_lost strand "$(j .delivery.lost tail)"
    fi
    stop "$SPID"
    stop "$FPID"

    # Idle connections on fresh servers, one at a time (threads are scarce).
    start_strand
    hold_measure strand "$SPID" "$SADDR"
    stop "$SPID"
    start_floor
    hold_measure floor "$FPID" "$FADDR"
    stop "$FPID"
done

# median FIGURE SERVER: the median of the samples, or "-".
median() {
    local f="$WORK/vals/$1.$2"
    [[ -s $f ]] || { echo "-"; return; }
    sort -g "$f" | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
fmt() { [[ $1 == - ]] && echo - || printf "%.${2}f" "$1"; }
ratio() {
    [[ $1 == - || $2 == - ]] && { echo -; return; }
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f×", a / b }'
}

# row LABEL FIGURE DECIMALS TARGET: a table row, strand beside the floor.
row() {
    local s f
    s=$(median "$2" strand)
    f=$(median "$2" floor)
    echo "| $1 | $(fmt "$s" "$3") | $(fmt "$f" "$3") | $(ratio "$s" "$f") | $4 |"
}

generated() {
    echo "<!-- BEGIN GENERATED by docs/bench.sh; do not edit by hand -->"
    echo
    echo "Generated $(date -u +'%Y-%m-%d %H:%M UTC'), medians of $RUNS runs"
    echo "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores,"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r),"
    echo "$(rustc --version | cut -d' ' -f1-2); $SERVER_NOTE)."
    echo "Server and load generator on the same machine."
    echo
    echo "| figure | strand | floor | strand / floor | target |"
    echo "|---|---:|---:|---:|---|"
    row "echo, 1 client: RTT p50 (µs)" echo1_rtt_p50_us 0 "≤ 1.05× floor"
    row "echo, 1 client: RTT p99 (µs)" echo1_rtt_p99_us 0 ""
    row "echo, 100 clients, 64 B: msgs/s" echo100_msgs_per_s 0 "≥ 0.9× floor"
    row "echo, 100 clients: RTT p99 (µs)" echo100_rtt_p99_us 0 ""
    row "echo, $BIG clients, 64 B: msgs/s" echo1000_msgs_per_s 0 "≥ 0.8× floor"
    row "echo, $BIG clients: RTT p99 (µs)" echo1000_rtt_p99_us 0 ""
    row "connect, 4 threads: handshakes/s" connect_per_s 0 "≥ 10,000"
    row "hold $HOLD_N idle: RSS per connection (KiB)" hold_rss_per_conn_kib 1 "≤ 24 KiB"
    row "hold $HOLD_N idle: server CPU (% of a core)" hold_idle_cpu_pct 2 "< 1%"
    row "hold $HOLD_N: connect p99 (ms)" hold_connect_p99_ms 2 ""
    row "hold $HOLD_N: survivors" hold_survivors 0 "all"
    row "fanout $FAN_N subs × 100 msg/s: deliveries/s" fanout_deliveries_per_s 0 "all of $((FAN_N * 100))/s"
    row "fanout $FAN_N subs: latency p99 (ms)" fanout_p99_ms 2 "< 50 ms"
    row "fanout $FAN_N subs: lost" fanout_lost 0 "0"
    row "room of $ROOM_N forms (s; 30 = not within the timeout)" room_formation_s 2 "< 5 s"
    row "room of $ROOM_N: join notices missing" room_joins_missing 0 "0"
    row "room of $ROOM_N × 10 msg/s: latency p99 (ms)" room_p99_ms 2 "< 100 ms"
    row "room of $ROOM_N: lost" room_lost 0 "0"
    row "tail, 10 followers: latency p50 (µs)" tail_p50_us 0 ""
    row "tail, 10 followers: latency p99 (µs)" tail_p99_us 0 "≤ 1,000 µs"
    row "tail, 10 followers: lost" tail_lost 0 "0"
    echo
    if [[ -s $WORK/notes ]]; then
        echo "Client errors seen (counted by \`strand bench\`, included in the figures):"
        echo
        sed 's/^/- /' "$WORK/notes"
        echo
    fi
    echo "Samples per run (strand / floor):"
    echo
    echo '```'
    for f in "$WORK"/vals/*; do
        echo "$(basename "$f"): $(tr '\n' ' ' <"$f")"
    done
    echo '```'
    echo
    echo "<!-- END GENERATED -->"
}

generated >"$WORK/generated.md"
if [[ -f $OUT ]] && grep -q "BEGIN GENERATED" "$OUT"; then
    awk -v gen="$WORK/generated.md" '
        /BEGIN GENERATED/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /END GENERATED/ { skip = 0; next }
        !skip { print }' "$OUT" >"$WORK/out.md"
    cp "$WORK/out.md" "$OUT"
else
    mkdir -p "$(dirname "$OUT")"
    { echo "# Benchmarks"; echo; cat "$WORK/generated.md"; } >"$OUT"
fi
echo "wrote $OUT" >&2
cat "$WORK/generated.md"
