#!/usr/bin/env bash
# Measures what `strand bench` itself costs (docs/LOAD-TESTING.md, "Its own
# cost"): resident memory and CPU per held client, CPU per timed message,
# the most clients one process holds, and the same tests run by Artillery,
# all against a server that is not strand (the tokio-tungstenite peer,
# bench/peers/tokio-echo, started fresh for each measurement).
#
# The server runs on one core (`taskset -c SERVER_CPU`), the load
# generator on the other (`taskset -c LOAD_CPU`) in a process group of its
# own: its peak resident memory is the largest sum of its group's RSS,
# sampled every 0.1 s (Artillery runs more than one process), its CPU
# seconds come from GNU time (children included). Per held client:
# (peak with N clients - peak with 1) / (N - 1), which leaves out the
# process's own fixed memory. Every load generator runs back to back in
# each of RUNS rounds, the order alternating; medians are printed.
#
# Knobs (environment):
#   LOADERS ("target/release/strand"): strand builds measured side by side
#     (e.g. "/tmp/strand-before target/release/strand");
#   HOLD ("1000 2000 15000"): client counts held; HOLD_SECS (20);
#   ECHO_CLIENTS (10), ECHO_MESSAGES (20000, per client): the echo test;
#   ARTILLERY: path of an `artillery` binary to measure with the same
#     tests (docs/load-testing/artillery-*.yml: 1000 held, 10 × 20000 sent);
#   RUNS (3); SERVER_CPU (1), LOAD_CPU (0); BUILD=0 measures the binaries
#     as they are (no cargo build first).
# Needs: GNU time (/usr/bin/time), taskset, setsid, jq, bc.
set -Eeuo pipefail
trap 'echo "docs/bench-cost.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

LOADERS=${LOADERS:-target/release/strand}
HOLD=${HOLD:-"1000 2000 15000"}
HOLD_SECS=${HOLD_SECS:-20}
ECHO_CLIENTS=${ECHO_CLIENTS:-10}
ECHO_MESSAGES=${ECHO_MESSAGES:-20000}
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PEER_DIR=bench/peers/tokio-echo
TOKIO_BIN=$PEER_DIR/target/release/tokio-echo
TESTS=$PWD/docs/load-testing

if [[ ${BUILD:-1} != 0 ]]; then
    cargo build --release --quiet --bin strand
    cargo build --release --quiet --manifest-path "$PEER_DIR/Cargo.toml"
fi

WORK=$(mktemp -d)
SERVER=
cleanup() {
    if [[ -n $SERVER ]]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

start_peer() {
    : >"$WORK/peer.log"
    taskset -c "$SERVER_CPU" "$TOKIO_BIN" 127.0.0.1:0 >"$WORK/peer.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 300); do
        grep -q "listening on" "$WORK/peer.log" && break
        sleep 0.1
    done
    ADDR=$(grep -o 'listening on [0-9.:]*' "$WORK/peer.log" | awk '{print $3}') || {
        echo "the tokio peer did not start:" >&2
        cat "$WORK/peer.log" >&2
        exit 1
    }
}
stop_peer() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
}

# run_measured NAME CMD...: runs CMD pinned, in a process group of its
# own, under GNU time; appends "PEAK_KIB CPU_S" to NAME's samples.
run_measured() {
    local name=$1 peak=0 rss pid
    shift
    setsid taskset -c "$LOAD_CPU" /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" \
        >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        # ps fails once the group is gone: that sample is 0.
        rss=$({ ps -o rss= -g "$pid" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
        ((rss > peak)) && peak=$rss
        sleep 0.1
    done
    wait "$pid" || {
        echo "$* failed:" >&2
        cat "$WORK/out" "$WORK/err" >&2
        exit 1
    }
    read -r user sys <"$WORK/time"
    echo "$peak $(echo "$user + $sys" | bc -l)" >>"$WORK/$name"
}

# strand_run NAME BIN ARGS...: `BIN bench ARGS` against a fresh peer; the
# JSON's connected and messages join the sample.
strand_run() {
    local name=$1 bin=$2
    shift 2
    start_peer
    run_measured "$name" "$bin" bench "$@" --url "ws://$ADDR/ws" -q --json "$WORK/run.json"
    stop_peer
    local extra
    extra=$(jq -r '"\(.connected) \(.messages // 0) \(.errors.total)"' "$WORK/run.json")
    sed -i "\$s/\$/ $extra/" "$WORK/$name"
}

# artillery_run NAME FILE: Artillery's run of FILE against a fresh peer.
artillery_run() {
    start_peer
    URL="ws://$ADDR/ws" ARTILLERY_DISABLE_TELEMETRY=true \
        run_measured "$1" "$ARTILLERY" run --quiet "$TESTS/$2"
    stop_peer
    cp "$WORK/out" "$WORK/$1.report"
}

for run in $(seq "$RUNS"); do
    order=($LOADERS ${ARTILLERY:+artillery})
    ((run % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    for bin in "${order[@]}"; do
        echo "run $run: $bin ($(date -u +%T))" >&2
        key=$(basename "$bin")
        if [[ $bin == artillery ]]; then
            artillery_run artillery.hold1000 artillery-hold.yml
            artillery_run artillery.echo artillery-echo.yml
            continue
        fi
        strand_run "$key.hold1" "$bin" hold --clients 1 --duration "$HOLD_SECS"
        for n in $HOLD; do
            strand_run "$key.hold$n" "$bin" hold --clients "$n" --duration "$HOLD_SECS"
        done
        strand_run "$key.echo" "$bin" echo --clients "$ECHO_CLIENTS" --messages "$ECHO_MESSAGES"
    done
done

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# col NAME N: the median of column N of NAME's samples.
col() { awk -v c="$2" '{print $c}' "$WORK/$1" | median; }
mib() { echo "$1 / 1024" | bc -l | xargs printf '%.1f'; }

echo "Medians of $RUNS runs; load generator on core $LOAD_CPU, the tokio peer on core $SERVER_CPU;"
echo "held $HOLD_SECS s; echo: $ECHO_CLIENTS clients × $ECHO_MESSAGES messages of 64 B."
echo
echo "| load generator | test | peak RSS (MiB) | per client (KiB) | CPU (s) | connected / timed |"
echo "|---|---|---:|---:|---:|---:|"
for bin in $LOADERS; do
    key=$(basename "$bin")
    base=$(col "$key.hold1" 1)
    echo "| $bin | hold 1 | $(mib "$base") | | $(printf '%.2f' "$(col "$key.hold1" 2)") | $(col "$key.hold1" 3) |"
    for n in $HOLD; do
        peak=$(col "$key.hold$n" 1)
        per=$(echo "($peak - $base) / ($n - 1)" | bc -l | xargs printf '%.1f')
        echo "| $bin | hold $n | $(mib "$peak") | $per | $(printf '%.2f' "$(col "$key.hold$n" 2)") | $(col "$key.hold$n" 3) |"
    done
    cpu=$(col "$key.echo" 2)
    msgs=$(col "$key.echo" 4)
    echo "| $bin | echo | $(mib "$(col "$key.echo" 1)") | | $(printf '%.2f' "$cpu") | $msgs timed, $(echo "$cpu * 1000000 / $msgs" | bc -l | xargs printf '%.1f') µs CPU each |"
done
if [[ -n ${ARTILLERY:-} ]]; then
    peak=$(col artillery.hold1000 1)
    echo "| artillery | hold 1000 | $(mib "$peak") | $(echo "$peak / 1000" | bc -l | xargs printf '%.1f') (all in) | $(printf '%.2f' "$(col artillery.hold1000 2)") | |"
    echo "| artillery | echo (sent, not timed) | $(mib "$(col artillery.echo 1)") | | $(printf '%.2f' "$(col artillery.echo 2)") | 0 timed |"
fi
echo
echo "Samples (peak KiB, CPU s[, connected, messages, errors]):"
for f in "$WORK"/*.hold* "$WORK"/*.echo; do
    [[ -f $f ]] && echo "$(basename "$f"): $(tr '\n' ';' <"$f")"
done
