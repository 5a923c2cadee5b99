#!/usr/bin/env bash
# Every GPU number of issue 14 (speed) in one run, for a session that has a CUDA GPU:
#   bash benchmarks/gpu_check.sh            # JSON + text under $OUT (default benchmarks/results/gpu-check/)
# 1. the CUDA tests of the speed switches (CUDA-graph sampling vs eager, compile, channels_last);
# 2. throughput in bf16: training eager vs compiled (+channels_last, fused Adam) at the paper's batch
#    (32 x 2) and the largest that fits, sampling eager vs CUDA graphs vs compiled, FLOPs, TFLOP/s,
#    share of the device's peak, hours per paper run, loader images/s (decoded PNGs vs prepared);
# 3. the sampling-overhead benchmark (tiny networks: the launch-bound case) eager and with graphs.
# Each step has its own time limit, so one slow step cannot eat the others' time, and the whole
# script fits in one 10-minute device command (run it with timeout_s=600).  Copy the JSON to
# benchmarks/results/ with the device name (e.g. throughput-h200-bfloat16.json) and the tables of docs/benchmarks.md.
# Needs a CUDA build of torch and colddiff's dependencies importable (pip install -e ".[test]").
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-check}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
status=0

step() {  # step NAME SECONDS COMMAND...: run with a limit, keep its output, go on after a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s) ==" | tee -a "$OUT/summary.txt"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    tail -n 40 "$OUT/$name.txt"
    echo "$name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
}

"$PY" - <<'EOF' | tee "$OUT/device.txt"
import torch
assert torch.cuda.is_available(), "no CUDA GPU here: this script measures GPU numbers"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

# one command of a device session may run at most 10 minutes: the limits below add up to 570 s
step tests 90 "$PY" -m pytest -q -x tests/test_speed.py -k "cuda or graph or gpu"
for preset in cifar10-blur celeba-blur mnist5k-blur-gen; do
    limit=150; [ "$preset" = mnist5k-blur-gen ] && limit=60
    step "throughput-$preset" $limit "$PY" -m benchmarks.throughput --device cuda --dtype bfloat16 --quick \
        --markdown --presets "$preset" --train-modes eager,compiled --sample-modes eager,graphs,compiled \
        --out "$OUT/throughput-$preset-bfloat16.json"
done
step sampling-eager 60 "$PY" -m benchmarks.sampling --device cuda --quick --markdown --out "$OUT/sampling-float32.json"
step sampling-graphs 60 "$PY" -m benchmarks.sampling --device cuda --quick --graphs --markdown \
    --out "$OUT/sampling-graphs-float32.json"
echo "results in $OUT/ (summary.txt, *.json, *.txt)"
exit $status
