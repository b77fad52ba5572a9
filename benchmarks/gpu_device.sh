#!/usr/bin/env bash
# The GPU check (benchmarks/gpu.py) as one command on a lent GPU machine, whose image has torch and
# transformers but not fastapi/uvicorn: those travel as wheels in .whl/ (ignored by git).
#
#   bash benchmarks/gpu_device.sh fetch          # here, once: download the wheels into .whl/
#   bash benchmarks/gpu_device.sh [gpu.py flags] # there (carry .whl): install them, run, log to $OUT
#
# On the GPU machine's run call: carry [".whl"], timeout_s 600, command `bash benchmarks/gpu_device.sh`.
# $OUT (default ./gpu-out) gets gpu_log.txt and gpu_report.json; the exit status is gpu.py's
# (1: a row failed), 3 when the wheels are needed and missing. $PYTHON picks the interpreter (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=(fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 pydantic==2.14.4 pydantic_core==2.50.5
        typing-inspection==0.4.5 annotated-types==0.8.0 typing_extensions==4.16.0 opentelemetry-api==1.45.2)

if [ "${1:-}" = fetch ]; then
    # The GPU image runs CPython 3.12 on x86-64, whatever this machine runs.
    exec "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
fi

OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ! "$PYTHON" -c "import fastapi, uvicorn" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "error: fastapi/uvicorn are missing and no wheels are in .whl/: run 'bash benchmarks/gpu_device.sh fetch' here and carry .whl" >&2
        exit 3
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kogpt2-site \
        .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/kogpt2-site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1
{
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    "$PYTHON" benchmarks/gpu.py --out "$OUT/gpu_report.json" "$@"
} 2>&1 | tee "$OUT/gpu_log.txt"
