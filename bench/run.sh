#!/usr/bin/env bash
# Run every benchmark and regenerate bench/RESULTS.md (`make bench` calls this).
#
#   bash bench/run.sh            # full run, ~10-15 min on a 2-core machine
#   bash bench/run.sh --quick    # smoke run on tiny inputs into bench/out/quick (numbers meaningless)
#
# 1. bench/common.py prepare: synthetic dataset + bench bundle at the default model size,
#    cached in bench/out/ (git-ignored; delete it to start afresh);
# 2. each benchmark writes bench/out/<name>.json (and prints its table);
# 3. bench/render_results.py turns the JSON files into bench/RESULTS.md (full runs only).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ "$QUICK" = 1 ]; then OUT=bench/out/quick; Q=--quick; else OUT=bench/out; Q=; fi
mkdir -p "$OUT"

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set in this shell (they pin NumPy's OpenBLAS to
# an older, slower kernel). Benchmarks run with both unset; the kernel that ran is recorded
# (threadpoolctl) in every JSON, and the shell's original values in RESULTS.md.
ORIG_ENV="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
ORIG_CORETYPE=${OPENBLAS_CORETYPE:-}
ORIG_L2=${OPENBLAS_L2_SIZE:-}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

T0=$(date +%s)
step() {
    local name=$1; shift
    echo
    echo "=== $name ($(( $(date +%s) - T0 )) s elapsed) ==="
    "$@"
}

step "prepare: dataset + bench bundle" "$PY" bench/common.py prepare --out "$OUT" $Q
if [ "$QUICK" = 1 ]; then
    step "log-mel vs librosa" "$PY" bench/bench_features.py --runs 10 --out "$OUT/features.json"
else
    step "log-mel vs librosa" "$PY" bench/bench_features.py --out "$OUT/features.json"
fi
if [ -n "$ORIG_CORETYPE$ORIG_L2" ]; then
    # The same comparison with the shell's OpenBLAS settings (what `make test` and a user's shell see).
    RUNS=300; [ "$QUICK" = 1 ] && RUNS=10
    step "log-mel vs librosa, with the shell's OPENBLAS_* settings" env ${ORIG_CORETYPE:+OPENBLAS_CORETYPE=$ORIG_CORETYPE} \
        ${ORIG_L2:+OPENBLAS_L2_SIZE=$ORIG_L2} "$PY" bench/bench_features.py --runs "$RUNS" --out "$OUT/features_shell_env.json"
else
    rm -f "$OUT/features_shell_env.json"
fi
step "inference: TFLite vs Keras" "$PY" bench/bench_inference.py --data-out "$OUT" --out "$OUT/inference.json" $Q
step "end to end + RSS: daemon vs naive TF" "$PY" bench/bench_rss.py --data-out "$OUT" --out "$OUT/rss.json" $Q
step "start-up" "$PY" bench/bench_startup.py --data-out "$OUT" --out "$OUT/startup.json" $Q
step "float32 vs int8" "$PY" bench/bench_quantize.py --data-out "$OUT" --out "$OUT/quantize.json" $Q
if [ -f bench/bench_soak.py ]; then
    # The bench bundle was trained on synth seed 1234 (bench/common.py DATA_SEED): the soak's clips use it too.
    if [ "$QUICK" = 1 ]; then SOAK_ARGS="--hours 0.05"; else SOAK_ARGS="--hours 1"; fi
    step "soak: 1 h through simulate --fast, RSS growth" "$PY" bench/bench_soak.py --model "$PWD/$OUT/bundle" --seed 1234 \
        --out "$OUT/soak.json" $SOAK_ARGS \
        || echo "bench_soak.py exited with status $? (a missed target or a failure; see above)" >&2
else
    echo "bench/bench_soak.py is missing: soak not run" >&2
fi

step "disk writes per hour of monitoring, broker up and down" "$PY" bench/bench_disk_writes.py \
    --model "$PWD/$OUT/bundle" --seed 1234 --out "$OUT/disk_writes.json" $([ "$QUICK" = 1 ] && echo "--hours 0.1 --short-minutes 1") \
    || echo "bench_disk_writes.py exited with status $? (see above)" >&2

step "scoring with the status page open vs off" "$PY" bench/bench_http.py --bundle "$PWD/$OUT/bundle" \
    --out "$OUT/http.json" $([ "$QUICK" = 1 ] && echo "--windows 20") \
    || echo "bench_http.py exited with status $? (see above)" >&2

step "cost per window by detector set" "$PY" bench/bench_detector_cost.py --bundle "$PWD/$OUT/bundle" \
    --out "$OUT/detector_cost.json" $([ "$QUICK" = 1 ] && echo "--runs 20")

step "Pi 4 cost model: counted work per window" "$PY" bench/cost_model.py --bundle "$OUT/bundle" \
    --out "$OUT/cost_model.json"

TOTAL=$(( $(date +%s) - T0 ))
if [ "$QUICK" = 1 ]; then
    step "render (quick: into $OUT/RESULTS.md)" "$PY" bench/render_results.py --out-dir "$OUT" \
        --results "$OUT/RESULTS.md" --total-seconds "$TOTAL" --orig-openblas-env "$ORIG_ENV"
else
    step "render bench/RESULTS.md" "$PY" bench/render_results.py --out-dir "$OUT" --results bench/RESULTS.md \
        --total-seconds "$TOTAL" --orig-openblas-env "$ORIG_ENV"
fi
echo "bench/run.sh done in $(( $(date +%s) - T0 )) s"
