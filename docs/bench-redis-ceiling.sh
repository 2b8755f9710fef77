#!/usr/bin/env bash
# Where one Redis ends (docs/SCALING.md): the CPU one Redis spends per room
# message with strand's own PUBLISH script, against the CPU one strand
# spends per message, side by side in one run.
#
# 1. redis-benchmark calls the PUBLISH script (taken from
#    src/broker/redis/scripts.rs) by EVALSHA in pipelines of 64, as the
#    publisher thread does, with two subscribers on the room's channel (two
#    instances); Redis's CPU time / messages = microseconds per message.
# 2. One strand (release build) on the same Redis with `strand bench fanout`
#    (SUBS subscribers in one room, one publisher as fast as it can): the
#    strand process's and Redis's CPU time per message.
#
# Needs redis-server, redis-cli, redis-benchmark, python3 and bc; builds
# strand --release.
# Run it alone: flock /tmp/strand-heavy.lock docs/bench-redis-ceiling.sh
# ROUNDS=3 by default; SUBS="2 20 200" subscriber counts for part 2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SUBS=${SUBS:-"2 20 200"}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --bin strand -q
bin=target/release/strand
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no >"$work/redis.log" 2>&1 &
rpid=$!
pids+=("$rpid")
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

# The script as strand loads it: PRELUDE followed by PUBLISH.
lua() { awk -v name="$1" '$0 ~ "^const " name ": &str = r#\"" {on=1; next} on && /^"#;/ {exit} on {print}' \
  src/broker/redis/scripts.rs; }
{ lua PRELUDE; lua PUBLISH; } >"$work/publish.lua"
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$work/publish.lua")")
body='{"n":"alice","c":"0123456789012345678901234567890123456789012345678901234567890123","t":1733500000000}'
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# Two subscribers that read and discard (bash's /dev/tcp and cat: cheap).
for _ in 1 2; do
  ( exec 3<>"/dev/tcp/127.0.0.1/$port"; printf 'SUBSCRIBE strand:ch:room:r\r\n' >&3; exec cat <&3 >/dev/null ) &
  pids+=("$!")
done
sleep 0.5

echo "1. the PUBLISH script alone, pipelines of 64, 2 subscribers"
for round in $(seq "$ROUNDS"); do
  n=400000
  r0=$(cpu "$rpid")
  rate=$(redis-benchmark -p "$port" -q -c 4 -n "$n" -P 64 EVALSHA "$sha" 2 \
    strand:room:r:meta strand:room:r:hist E1 100 86400 strand:ch:room:r "$body" '' 0 '' 0 \
    | tr '\r' '\n' | grep -v '^$' | tail -1 | sed 's/.*: //')
  r1=$(cpu "$rpid")
  us=$(echo "($r1-$r0)*1000000/$hz/$n" | bc -l)
  printf '   round %d: %.2f us of Redis CPU per message (%.0f messages/s at 100%% of a core); %s\n' \
    "$round" "$us" "$(echo "1000000/$us" | bc -l)" "$rate"
done

echo "2. one strand on the same Redis, strand bench fanout, publisher as fast as it can"
for round in $(seq "$ROUNDS"); do
  for subs in $SUBS; do
    n=$((60000 / subs + 3000))
    log="$work/strand-$round-$subs.log"
    "$bin" --bind 127.0.0.1:0 --redis "redis://127.0.0.1:$port" --redis-prefix "b$round$subs" \
      --data-dir "$work/data" >"$log" 2>&1 &
    spid=$!
    until grep -q "listening on" "$log" 2>/dev/null; do sleep 0.05; done
    addr=$(grep -o "listening on .*" "$log" | awk '{print $3}')
    sleep 1
    s0=$(cpu "$spid"); r0=$(cpu "$rpid")
    delivered=$("$bin" bench fanout --url "ws://$addr" --subscribers "$subs" --messages "$n" \
      --rate 0 --grace 2 -q 2>/dev/null | grep -E '^ +delivery +[0-9]' | sed 's/^ *delivery *//')
    s1=$(cpu "$spid"); r1=$(cpu "$rpid")
    kill "$spid"; wait "$spid" 2>/dev/null || true
    printf '   round %d, %3d subscribers, %6d messages: strand %.1f us, Redis %.1f us of CPU per message (%s)\n' \
      "$round" "$subs" "$n" \
      "$(echo "($s1-$s0)*1000000/$hz/$n" | bc -l)" "$(echo "($r1-$r0)*1000000/$hz/$n" | bc -l)" \
      "$delivered"
  done
done
