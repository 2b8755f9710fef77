#!/usr/bin/env bash
# The long, coverage-guided fuzzing run of strand's parsers (see
# docs/FUZZING.md): cargo-fuzz with libFuzzer and `--sanitizer none`,
# which works on stable Rust. One target at a time, one core.
#
#   docs/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   default: 600 s, all four
#
# New corpus entries go to fuzz/corpus/TARGET (not committed); a crash is
# saved in fuzz/artifacts/TARGET; copy it to fuzz/regressions/TARGET so
# that `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(head names hub_decode frames)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer none
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${secs} s"
  status=0
  cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || status=$?
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|cov: " "logs/$t.log" | tail -n 5
  if [ "$status" -ne 0 ]; then
    echo "!! $t failed (exit $status): see fuzz/logs/$t.log and fuzz/artifacts/$t"
    grep -E "panicked|ERROR|SUMMARY" "logs/$t.log" | head -n 5 || true
  fi
done
