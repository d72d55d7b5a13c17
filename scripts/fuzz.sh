#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS each
# (default 30), starting from the seeds in fuzz/corpus/<target>/; new inputs
# go to target/fuzz-corpus/<target>/, never into the repository. Any crash
# fails the script; the executions per target are printed at the end.
# Needs the nightly toolchain (installed beside stable) and cargo-fuzz
# (installed from crates.io when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build --fuzz-dir fuzz
summary=()
for t in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  log="target/fuzz-$t.log"
  echo "== fuzz $t (${FUZZ_SECONDS}s)"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="target/fuzz-$t-" >"$log" 2>&1; then
    # The panic message and the input first: the backtrace buries them.
    grep -m1 -A4 'panicked at' "$log" || tail -40 "$log"
    for f in target/fuzz-"$t"-*; do
      [ -f "$f" ] && { echo "input $f:"; od -An -c "$f" | head -20; }
    done
    echo "fuzz target $t failed; the input is under target/fuzz-$t-*" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  summary+=("$t: ${runs:-?} executions")
done
printf '%s\n' "${summary[@]}"
