#!/usr/bin/env bash
# The one GPU check: the deployment part (gpu_check_deploy.py: export fp32/fp16/int8 + TensorRT cache, parity
# on CUDA, timings) and, when present, the training part (gpu_check.py). Each prints "no GPU: ..." and exits 0
# on a machine without one. Exits non-zero when any part fails (a parity failure, say).
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default benchmarks/results/gpu_check; PYTHON=... to choose)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
out="${1:-benchmarks/results/gpu_check}"
status=0
"$PYTHON" benchmarks/gpu_check_deploy.py --out "$out" || status=$?
if [ -f benchmarks/gpu_check.py ]; then
    # gpu_check.py exits 2 when torch sees no CUDA device: that is "no GPU" here, not a failure.
    train_status=0
    "$PYTHON" benchmarks/gpu_check.py --out "$out/train.json" || train_status=$?
    if [ "$train_status" -eq 2 ]; then
        echo "no GPU: the training check (benchmarks/gpu_check.py) sees no CUDA device and did not run"
    elif [ "$train_status" -ne 0 ]; then
        status=$train_status
    fi
fi
exit "$status"
