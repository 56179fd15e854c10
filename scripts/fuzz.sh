#!/usr/bin/env bash
# Fuzzes the parsers of user input with libFuzzer: variant text, manifests, safetensors files and
# lmms-eval results (Sources/squeeze-fuzz).
#   scripts/fuzz.sh [SECONDS] [TARGET…]    each target for SECONDS (default 30), all targets by default
# Each run starts from the committed corpus Tests/Fuzz/TARGET and adds what it finds to
# runs/fuzz/TARGET; a crash, trap, hang (10 s) or 2 GB of memory stops it, the input is kept as
# runs/fuzz/TARGET-crash-… (the log in runs/fuzz/TARGET.log), and the script fails. `squeeze-fuzz TARGET -merge=1 Tests/Fuzz/TARGET
# runs/fuzz/TARGET` folds the new inputs into the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
seconds=${1:-30}; shift || true
targets=("$@"); ((${#targets[@]})) || targets=(variant manifest safetensors lmms-eval)

# A build of its own, instrumented for coverage; lld, since gold fails on libFuzzer's objects.
swift build -c release --scratch-path .build-fuzz --product squeeze-fuzz \
    -Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld
fuzzer=.build-fuzz/release/squeeze-fuzz
# libFuzzer, not Swift's backtracer, must catch a trap, so that it keeps the input.
export SWIFT_BACKTRACE=enable=no
for target in "${targets[@]}"; do
    mkdir -p "runs/fuzz/$target"
    echo "== $target for $seconds s"
    status=0
    "$fuzzer" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="runs/fuzz/$target-" "runs/fuzz/$target" "Tests/Fuzz/$target" > "runs/fuzz/$target.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "runs/fuzz/$target.log" || true
    if ((status)); then
        echo "fuzz: $target failed (exit status $status); see runs/fuzz/$target.log and runs/fuzz/$target-*" >&2
        grep -E 'ERROR|Fatal error|SUMMARY' "runs/fuzz/$target.log" | head -5 >&2
        exit 1
    fi
done
