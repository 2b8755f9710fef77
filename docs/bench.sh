#!/usr/bin/env bash
# Regenerates the results in docs/BENCHMARKS.md.
#
# Builds release binaries, then RUNS times, once with the server pinned to
# one core (`taskset -c 1`, the load generator on the other with
# `taskset -c 0`) and once unpinned: starts strand, the tokio-tungstenite
# peer (bench/peers/tokio-echo) and the floor (examples/floor_echo.rs),
# runs each scenario against every server that supports it, back to back,
# with `strand bench`, and records the figures; finally writes the medians
# between the GENERATED markers of docs/BENCHMARKS.md (the hand-written
# analysis around them is kept).
#
# Knobs (environment):
#   RUNS (5); SHORT=1 for a quick smoke run with small sizes;
#   OUT (docs/BENCHMARKS.md);
#   MODES ("pinned unpinned tls"): which passes to run; tls is the pinned
#     pass over wss:// (strand and the tokio peer with the same certificate,
#     a self-signed P-256 one made here with the openssl command; the floor
#     has no TLS);
#   SERVER_CPU (1), LOAD_CPU (0): the cores of the pinned pass;
#   SERVER_BIN: the strand to measure (default: this tree's release build),
#     SERVER_NOTE: how the header names it;
#   BASE_BIN: a second strand build measured beside it (column "base",
#     ratio strand / base), BASE_NOTE: how the header names it;
#   TOKIO=0 leaves the tokio peer out, FLOOR=0 the floor;
#   PICS (docs/bench): where the pictures go: for each pass, the
#     latency distributions of echo (100 and BIG clients), fanout and
#     hold's connect times, every server overlaid (`strand bench report`,
#     each server's median run by p99): NAME-PASS.html and NAME-PASS.svg,
#     the SVGs shown in OUT.
# The load generator is always this tree's `strand bench`.
#
#   NICE (-10): the nice value of each measured process's autogroup.
#
# Every server and every load-generator run is its own session (`setsid`),
# hence its own scheduler autogroup, as a service would be. In one group
# the kernel splits the group's CPU weight between cores by load: a
# one-thread server pinned beside a 100-thread generator got a sliver of
# its core against other work on the machine (tokio: 4-7k echo msgs/s
# while waiting on the run queue 90% of the time), a 100-thread one
# (the floor) nearly all of it. Each group then gets NICE, so that other
# work on a shared machine (builds, tests) takes less of the measured
# cores: with foreign builds running, the tokio peer's echo went from
# 29-43k to 84-88k msgs/s, the floor's from 37-47k to 49-61k. It needs
# root (or CAP_SYS_NICE) for a negative NICE; without, groups keep nice 0.
set -euo pipefail
trap 'echo "docs/bench.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
OUT=${OUT:-docs/BENCHMARKS.md}
PICS=${PICS:-docs/bench}
MODES=${MODES:-"pinned unpinned tls"}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
if [[ ${SHORT:-0} == 1 ]]; then
    ECHO_SECS=1 HOLD_N=200 HOLD_SECS=4 CONNECT_SECS=1 BIG=100
    FAN_N=100 FAN_K=100 FAST_N=20 FAST_K=1000 ROOM_N=200 ROOM_K=10
else
    ECHO_SECS=5 HOLD_N=5000 HOLD_SECS=16 CONNECT_SECS=5 BIG=1000
    FAN_N=1000 FAN_K=500 FAST_N=100 FAST_K=5000 ROOM_N=4000 ROOM_K=50
fi
MAX_CONN=12000

echo "building release binaries..." >&2
cargo build --release --quiet --bin strand --example floor_echo
BIN=target/release/strand
SERVER_BIN=${SERVER_BIN:-$BIN}
SERVER_NOTE=${SERVER_NOTE:-"strand at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo '+changes')"}
FLOOR_BIN=target/release/examples/floor_echo
PEER_DIR=bench/peers/tokio-echo
TOKIO_BIN=$PEER_DIR/target/release/tokio-echo

# The servers measured, in this order in the tables.
SIDES=(strand)
if [[ -n ${BASE_BIN:-} ]]; then
    SIDES+=(base)
    BASE_NOTE=${BASE_NOTE:-"base: $BASE_BIN"}
fi
if [[ ${TOKIO:-1} != 0 ]]; then
    SIDES+=(tokio)
    cargo build --release --quiet --manifest-path "$PEER_DIR/Cargo.toml"
fi
[[ ${FLOOR:-1} != 0 ]] && SIDES+=(floor)

NICE=${NICE:--10}
if ! setsid sh -c 'echo "$0" >/proc/self/autogroup' "$NICE" 2>/dev/null; then
    echo "docs/bench.sh: cannot set autogroup nice $NICE (not root?); measuring at nice 0" >&2
    NICE=0
fi
# OWN_GROUP CMD...: runs CMD (exec'd, same PID) in a session and autogroup
# of its own, at NICE.
OWN_GROUP=(setsid sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec "$@"' "$NICE")

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/tail" "$WORK/vals" "$WORK/runs" "$PICS"
if [[ " $MODES " == *" tls "* ]]; then
    # One certificate for every server of the TLS pass, from a CA of its
    # own that the load generator trusts (webpki refuses a self-signed CA
    # as a server's certificate). P-256, as an ACME certificate would be.
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${ec[@]}" -days 7 -subj /CN=bench-ca \
        -keyout "$WORK/ca-key.pem" -out "$WORK/ca.pem" 2>/dev/null
    openssl req "${ec[@]}" -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/leaf.ext"
    openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca-key.pem" \
        -CAcreateserial -days 7 -extfile "$WORK/leaf.ext" -out "$WORK/cert.pem" 2>/dev/null
fi
STARTED=$(date +%s)

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

# has_rooms SIDE / has_tail SIDE / has_tls SIDE: what a server offers
# beyond /ws echo.
has_rooms() { [[ $1 != floor ]]; }
has_tls() { [[ $1 != floor ]]; }
has_tail() { [[ $1 == strand || $1 == base ]]; }

# start SIDE: starts a fresh server (pinned in the pinned pass); sets
# SPID[SIDE] and ADDR[SIDE].
declare -A SPID ADDR
start() {
    local side=$1 log="$WORK/$1.log" tls=()
    [[ $mode == tls ]] && tls=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
    # A fresh log: the old one names the previous server's port.
    rm -f "$log"
    case $side in
        strand | base)
            local bin=$SERVER_BIN
            [[ $side == base ]] && bin=$BASE_BIN
            "${PIN_SERVER[@]}" "$bin" serve --bind 127.0.0.1:0 --max-connections "$MAX_CONN" \
                --log-level info --data-dir "$WORK/data-$side" --tail-dir "$WORK/tail" "${tls[@]}" 2>"$log" &
            ;;
        tokio) "${PIN_SERVER[@]}" "$TOKIO_BIN" 127.0.0.1:0 "${tls[@]}" >"$log" 2>&1 & ;;
        floor) "${PIN_SERVER[@]}" "$FLOOR_BIN" 127.0.0.1:0 >"$log" 2>&1 & ;;
    esac
    SPID[$side]=$!
    PIDS+=("$!")
    wait_line "$log" "listening on"
    # setsid must exec, not fork, or the PID measured would not be the server's.
    if [[ $(ps -o sid= -p "${SPID[$side]}" | tr -d ' ') != "${SPID[$side]}" ||
        $(cat "/proc/${SPID[$side]}/autogroup") != *" nice $NICE" ]]; then
        echo "$side is not its own session at nice $NICE; run docs/bench.sh as a script" >&2
        exit 1
    fi
    local cpus
    cpus=$(awk '/^Cpus_allowed_list:/ {print $2}' "/proc/${SPID[$side]}/status")
    if [[ $mode != unpinned && $cpus != "$SERVER_CPU" ]]; then
        echo "$side runs on CPUs $cpus, not $SERVER_CPU: the pin did not take" >&2
        exit 1
    fi
    ADDR[$side]=$(grep -o 'listening on [0-9.:]*' "$log" | head -1 | awk '{print $3}')
}

stop() {
    kill "${SPID[$1]}" 2>/dev/null || true
    wait "${SPID[$1]}" 2>/dev/null || true
}

# record FIGURE SIDE VALUE: one sample ("RUN VALUE") of a figure in this pass.
record() {
    awk -v r="$run" -v v="$3" 'BEGIN { printf "%d %.6g\n", r, v }' >>"$WORK/vals/$mode.$1.$2"
}

# load ARGS...: `strand bench ARGS`, on the load generator's core when
# pinned; in the TLS pass it trusts the servers' certificate.
load() {
    local tls=()
    [[ $mode == tls ]] && tls=(--cacert "$WORK/ca.pem")
    "${PIN_LOAD[@]}" "$BIN" bench "$@" "${tls[@]}"
}

# bench NAME ARGS...: runs `strand bench ARGS`, JSON in $WORK/NAME.json.
bench() {
    local name=$1
    shift
    load "$@" -q --json "$WORK/$name.json" >"$WORK/$name.txt" 2>"$WORK/$name.err" || {
        echo "strand bench $* failed:" >&2
        cat "$WORK/$name.txt" "$WORK/$name.err" >&2
        return 1
    }
    keep "$name"
    local errors
    errors=$(jq '.errors.total' "$WORK/$name.json")
    if [[ $errors != 0 ]]; then
        echo "$mode, run $run, $name ($side): client errors $(jq -c '.errors.kinds' "$WORK/$name.json")" |
            tee -a "$WORK/notes" >&2
    fi
}

# keep NAME: keeps this run's JSON of NAME (for the pictures).
keep() { cp "$WORK/$1.json" "$WORK/runs/$mode.$1.$side.$run.json"; }

j() { jq -r "$1" "$WORK/$2.json"; }
ms() { echo "$(j "$1" "$2") / 1000" | bc -l; }

# delivered NAME: whether a fanout or tail run delivered anything.
delivered() { [[ $(j '.delivery.delivered' "$1") -gt 0 ]]; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# each FN [FILTER]: runs `FN SIDE ADDR` for every side (that FILTER
# accepts), back to back, the order rotated by run so that load from
# elsewhere on the machine falls on all alike.
each() {
    local fn=$1 filter=${2:-true} n=${#SIDES[@]} i side
    for ((i = 0; i < n; i++)); do
        side=${SIDES[$(((i + run) % n))]}
        "$filter" "$side" || continue
        [[ $mode == tls ]] && ! has_tls "$side" && continue
        "$fn" "$side" "${ADDR[$side]}"
    done
}

echo1() {
    bench echo1 echo --url "$SCHEME://$2/ws" --clients 1 --duration "$ECHO_SECS"
    record echo1_rtt_p50_us "$1" "$(j .rtt_us.p50 echo1)"
    record echo1_rtt_p99_us "$1" "$(j .rtt_us.p99 echo1)"
}
echo100() {
    bench echo100 echo --url "$SCHEME://$2/ws" --clients 100 --duration "$ECHO_SECS"
    record echo100_msgs_per_s "$1" "$(j .msgs_per_s echo100)"
    record echo100_rtt_p99_us "$1" "$(j .rtt_us.p99 echo100)"
}
echo1000() {
    bench echo1000 echo --url "$SCHEME://$2/ws" --clients "$BIG" --duration "$ECHO_SECS"
    record echo1000_msgs_per_s "$1" "$(j .msgs_per_s echo1000)"
    record echo1000_rtt_p99_us "$1" "$(j .rtt_us.p99 echo1000)"
}
connect() {
    bench connect connect --url "$SCHEME://$2/ws" --threads 4 --duration "$CONNECT_SECS"
    record connect_per_s "$1" "$(j .handshakes_per_s connect)"
}
# fanout_at FIGURE SUBSCRIBERS MESSAGES RATE SIDE ADDR: one publisher to a
# text room.
fanout_at() {
    local f=$1 name=$1
    if bench "$name" fanout --url "$SCHEME://$6" --subscribers "$2" --messages "$3" \
        --rate "$4" --room "$f$run" && delivered "$name"; then
        record "${f}_deliveries_per_s" "$5" "$(j .deliveries_per_s "$name")"
        record "${f}_p50_ms" "$5" "$(ms .latency_us.p50 "$name")"
        record "${f}_p99_ms" "$5" "$(ms .latency_us.p99 "$name")"
        record "${f}_lost" "$5" "$(j .delivery.lost "$name")"
    fi
}
fanout() { fanout_at fanout "$FAN_N" "$FAN_K" 100 "$@"; }
fanfast() { fanout_at fanfast "$FAST_N" "$FAST_K" 1000 "$@"; }
# Formation is bounded by --timeout: a room that has not formed by then
# shows as the timeout and its missing join notices.
room() {
    rm -f "$WORK/room.json"
    if bench room fanout --url "$SCHEME://$2" --subscribers "$ROOM_N" --messages "$ROOM_K" \
        --rate 10 --room big$run --timeout 30 && [[ $(j .connected room) -gt 0 ]]; then
        record room_formation_s "$1" "$(j .formation_s room)"
        record room_joins_missing "$1" "$(j '.join_notices.expected - .join_notices.received' room)"
    fi
    if [[ -f $WORK/room.json ]] && delivered room; then
        record room_p99_ms "$1" "$(ms .latency_us.p99 room)"
        record room_lost "$1" "$(j .delivery.lost room)"
    fi
}
tail_follow() {
    : >"$WORK/tail/bench.log"
    if bench tail tail --url "$SCHEME://$2" --file "$WORK/tail/bench.log" --clients 10 \
        --lines 200 --rate 100 && delivered tail; then
        record tail_p50_us "$1" "$(j .latency_us.p50 tail)"
        record tail_p99_us "$1" "$(j .latency_us.p99 tail)"
        record tail_lost "$1" "$(j .delivery.lost tail)"
    fi
}

# hold SIDE: on a fresh server, HOLD_N idle connections; RSS and threads
# per connection and idle CPU of the server.
hold() {
    local side=$1 pid before after threads0 threads1 t0 t1 hz n
    start "$side"
    pid=${SPID[$side]}
    hz=$(getconf CLK_TCK)
    before=$(rss_kib "$pid")
    threads0=$(threads "$pid")
    load hold --url "$SCHEME://${ADDR[$side]}/ws" --clients "$HOLD_N" --duration "$HOLD_SECS" -q \
        --json "$WORK/hold.json" >"$WORK/hold.txt" 2>"$WORK/hold.err" &
    local bpid=$!
    PIDS+=("$bpid")
    wait_line "$WORK/hold.err" "^all .* connected"
    sleep 2
    after=$(rss_kib "$pid")
    threads1=$(threads "$pid")
    t0=$(cpu_ticks "$pid")
    sleep 10
    t1=$(cpu_ticks "$pid")
    wait "$bpid"
    keep hold
    n=$(j .connected hold)
    record hold_rss_per_conn_kib "$side" "$(echo "($after - $before) / $n" | bc -l)"
    record hold_threads_per_conn "$side" "$(echo "($threads1 - $threads0) / $n" | bc -l)"
    record hold_idle_cpu_pct "$side" "$(echo "($t1 - $t0) * 100 / $hz / 10" | bc -l)"
    record hold_connect_p99_ms "$side" "$(ms .connect_us.p99 hold)"
    record hold_survivors "$side" "$(j .survivors hold)"
    stop "$side"
}

for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        echo "run $run of $RUNS, $mode ($(($(date +%s) - STARTED)) s)" >&2
        case $mode in
            pinned) PIN_SERVER=("${OWN_GROUP[@]}" taskset -c "$SERVER_CPU") PIN_LOAD=("${OWN_GROUP[@]}" taskset -c "$LOAD_CPU") ;;
            unpinned) PIN_SERVER=("${OWN_GROUP[@]}") PIN_LOAD=("${OWN_GROUP[@]}") ;;
            tls) PIN_SERVER=("${OWN_GROUP[@]}" taskset -c "$SERVER_CPU") PIN_LOAD=("${OWN_GROUP[@]}" taskset -c "$LOAD_CPU") ;;
            *) echo "MODES: unknown mode $mode" >&2; exit 2 ;;
        esac
        SCHEME=ws
        [[ $mode == tls ]] && SCHEME=wss
        for side in "${SIDES[@]}"; do
            [[ $mode == tls ]] && ! has_tls "$side" && continue
            start "$side"
        done
        each echo1
        each echo100
        each echo1000
        each connect
        each fanout has_rooms
        each fanfast has_rooms
        each room has_rooms
        each tail_follow has_tail
        for side in "${SIDES[@]}"; do
            [[ $mode == tls ]] && ! has_tls "$side" && continue
            stop "$side"
        done

        # Idle connections on fresh servers, one at a time (threads are scarce).
        for ((i = 0; i < ${#SIDES[@]}; i++)); do
            side=${SIDES[$(((i + run) % ${#SIDES[@]}))]}
            [[ $mode == tls ]] && ! has_tls "$side" && continue
            hold "$side"
        done
    done
done
ELAPSED=$(($(date +%s) - STARTED))

# median FIGURE SIDE: the median of this pass's samples, or "-".
median() {
    local f="$WORK/vals/$mode.$1.$2"
    [[ -s $f ]] || { echo "-"; return; }
    awk '{print $2}' "$f" | sort -g |
        awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
# ratio FIGURE A B: the median over runs of A's sample / B's in the same run.
ratio() {
    local a="$WORK/vals/$mode.$1.$2" b="$WORK/vals/$mode.$1.$3"
    [[ -s $a && -s $b ]] || { echo "-"; return; }
    awk 'NR == FNR { v[$1] = $2; next } ($1 in v) && $2 != 0 { print v[$1] / $2 }' "$a" "$b" |
        sort -g | awk '{v[NR]=$1} END {
            if (NR == 0) print "-"
            else printf "%.2f×\n", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2 }'
}
fmt() { [[ $1 == - ]] && echo - || printf "%.${2}f" "$1"; }
# cell FIGURE SIDE DECIMALS: a side's median, or n/a where it has no such
# scenario.
cell() {
    local m
    m=$(median "$1" "$2")
    if [[ $m == - ]] && { ! offers "$1" "$2" || { [[ $mode == tls ]] && ! has_tls "$2"; }; }; then
        echo "n/a"
    else
        fmt "$m" "$3"
    fi
}
# offers FIGURE SIDE: whether the server has the endpoint the figure needs.
offers() {
    case $1 in
        fan* | room*) has_rooms "$2" ;;
        tail*) has_tail "$2" ;;
        *) true ;;
    esac
}
has() { [[ " ${SIDES[*]} " == *" $1 "* ]]; }

# median_run FIGURE SIDE: the run whose sample of FIGURE is this pass's
# median (the lower middle of an even count).
median_run() {
    local f="$WORK/vals/$mode.$1.$2"
    [[ -s $f ]] || return 1
    sort -g -k2 "$f" | awk '{r[NR] = $1} END {print r[int((NR + 1) / 2)]}'
}

# picture NAME FIGURE TITLE: every server's median run (by FIGURE) of NAME
# in this pass, overlaid in one report (PICS/NAME-PASS.html) and its
# latency distribution (PICS/NAME-PASS.svg); prints the markdown that
# shows them.
picture() {
    local name=$1 figure=$2 title=$3 files=() labels=() side r
    for side in "${SIDES[@]}"; do
        r=$(median_run "$figure" "$side") || continue
        [[ -f $WORK/runs/$mode.$name.$side.$r.json ]] || continue
        files+=("$WORK/runs/$mode.$name.$side.$r.json")
        labels+=(--label "$side")
    done
    [[ ${#files[@]} -gt 0 ]] || return 0
    "$BIN" bench report "${files[@]}" "${labels[@]}" --title "$title ($mode)" \
        --html "$PICS/$name-$mode.html" --svg "$PICS/$name-$mode.svg" >&2
    local rel
    rel=$(realpath --relative-to="$(dirname "$OUT")" "$PICS")
    echo "**$title** ([full report]($rel/$name-$mode.html)):"
    echo
    echo "![$title, $mode]($rel/$name-$mode.svg)"
    echo
}

# row LABEL FIGURE DECIMALS TARGET: a table row, every side and the ratios.
row() {
    local line="| $1 |" side
    for side in "${SIDES[@]}"; do line+=" $(cell "$2" "$side" "$3") |"; done
    if has tokio; then line+=" $(ratio "$2" strand tokio) |"; fi
    if has floor; then line+=" $(ratio "$2" strand floor) |"; fi
    if has base; then line+=" $(ratio "$2" strand base) |"; fi
    echo "$line $4 |"
}
header() {
    local line="| figure |" rule="|---|" side
    for side in "${SIDES[@]}"; do line+=" $side |" rule+="---:|"; done
    if has tokio; then line+=" strand / tokio |" rule+="---:|"; fi
    if has floor; then line+=" strand / floor |" rule+="---:|"; fi
    if has base; then line+=" strand / base |" rule+="---:|"; fi
    echo "$line target |"
    echo "$rule---|"
}

# table: this pass's figures; targets from issue 11 (pinned) and the
# project's first targets (unpinned).
table() {
    # pick PINNED UNPINNED TLS: the target of this pass.
    pick() {
        case $mode in
            pinned) echo "$1" ;;
            unpinned) echo "${2:-}" ;;
            tls) echo "${3:-}" ;;
        esac
    }
    header
    row "echo, 1 client: RTT p50 (µs)" echo1_rtt_p50_us 0 "$(pick "" "≤ 1.05× floor")"
    row "echo, 1 client: RTT p99 (µs)" echo1_rtt_p99_us 0 ""
    row "echo, 100 clients, 64 B: msgs/s" echo100_msgs_per_s 0 "$(pick "≥ 0.6× tokio" "≥ 1.0× tokio, ≥ 0.9× floor" "≥ 0.6× tokio")"
    row "echo, 100 clients: RTT p99 (µs)" echo100_rtt_p99_us 0 ""
    row "echo, $BIG clients, 64 B: msgs/s" echo1000_msgs_per_s 0 "$(pick "" "≥ 0.8× floor")"
    row "echo, $BIG clients: RTT p99 (µs)" echo1000_rtt_p99_us 0 ""
    row "connect, 4 threads: handshakes/s" connect_per_s 0 "$(pick "≥ 0.8× tokio" "≥ 10,000" "≥ 0.8× tokio")"
    row "hold $HOLD_N idle: RSS per connection (KiB)" hold_rss_per_conn_kib 1 "$(pick "≤ 15 KiB" "≤ 15 KiB" "≤ 2× plain")"
    row "hold $HOLD_N idle: threads per connection" hold_threads_per_conn 2 "1"
    row "hold $HOLD_N idle: server CPU (% of a core)" hold_idle_cpu_pct 2 "< 1%"
    row "hold $HOLD_N: connect p99 (ms)" hold_connect_p99_ms 2 ""
    row "hold $HOLD_N: survivors" hold_survivors 0 "all"
    row "fanout $FAN_N subs × 100 msg/s: deliveries/s" fanout_deliveries_per_s 0 "all of $((FAN_N * 100))/s"
    row "fanout $FAN_N subs × 100 msg/s: latency p50 (ms)" fanout_p50_ms 2 "$(pick "≤ tokio")"
    row "fanout $FAN_N subs × 100 msg/s: latency p99 (ms)" fanout_p99_ms 2 "$(pick "≤ tokio" "< 50 ms" "≤ tokio")"
    row "fanout $FAN_N subs × 100 msg/s: lost" fanout_lost 0 "0"
    row "fanout $FAST_N subs × 1000 msg/s: deliveries/s" fanfast_deliveries_per_s 0 "all of $((FAST_N * 1000))/s"
    row "fanout $FAST_N subs × 1000 msg/s: latency p50 (ms)" fanfast_p50_ms 2 "$(pick "≤ tokio")"
    row "fanout $FAST_N subs × 1000 msg/s: latency p99 (ms)" fanfast_p99_ms 2 "$(pick "≤ tokio" "" "≤ tokio")"
    row "fanout $FAST_N subs × 1000 msg/s: lost" fanfast_lost 0 "0"
    row "room of $ROOM_N forms (s; 30 = not within the timeout)" room_formation_s 2 "< 5 s"
    row "room of $ROOM_N: join notices missing" room_joins_missing 0 "0"
    row "room of $ROOM_N × 10 msg/s: latency p99 (ms)" room_p99_ms 2 "< 100 ms"
    row "room of $ROOM_N: lost" room_lost 0 "0"
    row "tail, 10 followers: latency p50 (µs)" tail_p50_us 0 ""
    row "tail, 10 followers: latency p99 (µs)" tail_p99_us 0 "≤ 1,000 µs"
    row "tail, 10 followers: lost" tail_lost 0 "0"
}

generated() {
    local tokio_ver=""
    has tokio && tokio_ver="; tokio peer: $(awk '/^name = "(tokio|tokio-tungstenite)"$/ {
        n = $3; getline; gsub(/"/, "", n); gsub(/"/, "", $3); printf "%s%s %s", s, n, $3; s = ", " }' \
        "$PEER_DIR/Cargo.lock")"
    echo "<!-- BEGIN GENERATED by docs/bench.sh; do not edit by hand -->"
    echo
    echo "Generated $(date -u +'%Y-%m-%d %H:%M UTC'), medians of $RUNS runs"
    echo "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores,"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r),"
    echo "$(rustc --version | cut -d' ' -f1-2); $SERVER_NOTE${BASE_NOTE:+; $BASE_NOTE}$tokio_ver)."
    echo "Server and load generator on the same machine, each in a scheduler autogroup"
    echo "of its own at nice $NICE; one run of every pass took"
    echo "$((ELAPSED / RUNS)) s. Ratios are medians of the per-run ratios (each run measures"
    echo "every server back to back), so they need not equal the ratio of the medians."
    echo "n/a: the server has no such endpoint."
    for mode in $MODES; do
        echo
        if [[ $mode == pinned ]]; then
            echo "### Server pinned to one core (\`taskset -c $SERVER_CPU\`), load generator on another (\`taskset -c $LOAD_CPU\`)"
        elif [[ $mode == tls ]]; then
            echo "### Over TLS (\`wss://\`, TLS 1.3, a P-256 certificate), pinned as above"
        else
            echo "### Unpinned: server and load generator share both cores"
        fi
        echo
        table
        echo
        echo "Latency by percentile, each server's median run by p99 (log axis of 1/(1-p):"
        echo "the right half of each chart is the slowest 1%):"
        echo
        picture echo100 echo100_rtt_p99_us "echo, 100 clients: round trip"
        picture echo1000 echo1000_rtt_p99_us "echo, $BIG clients: round trip"
        picture fanout fanout_p99_ms "fanout, $FAN_N subscribers × 100 msg/s: delivery"
        picture hold hold_connect_p99_ms "hold $HOLD_N: connect time"
    done
    echo
    if [[ -s $WORK/notes ]]; then
        echo "Client errors seen (counted by \`strand bench\`, included in the figures):"
        echo
        sed 's/^/- /' "$WORK/notes"
        echo
    fi
    echo "Samples per run (pass.figure.server: run by run):"
    echo
    echo '```'
    for f in "$WORK"/vals/*; do
        echo "$(basename "$f"): $(awk '{print $2}' "$f" | tr '\n' ' ')"
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
echo "wrote $OUT ($ELAPSED s)" >&2
cat "$WORK/generated.md"
