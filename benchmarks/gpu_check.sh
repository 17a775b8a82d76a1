#!/usr/bin/env bash
# The GPU path in one command (docs/performance.md): the tests marked `cuda`, the README's main job on the GPU,
# and the query benchmark's GPU figure (pool scoring against the FLOP-bound ideal), then one summary.
# On a machine without CUDA it says so and exits 0. About 5 minutes on one recent GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; installs nothing beyond `uv sync`
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${ALPLUG_PYTHON:-uv run python}"  # the interpreter of the project environment
if ! $PY -c "import torch" 2>/dev/null; then
    echo "gpu_check: torch does not import with $PY; run \`uv sync\` first" >&2
    exit 1
fi
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check"
    exit 0
fi
device="$($PY -c "import torch; print(torch.cuda.get_device_name())")"
out="$(mktemp -d "${TMPDIR:-/tmp}/alplug-gpu-check.XXXXXX")"
echo "gpu_check: $device; logs in $out"

timeout 240 $PY -m pytest -q -m cuda tests/test_cuda.py > "$out/tests.log" 2>&1
tests_rc=$?
timeout 180 $PY -m alplug run --query margin --device cuda --out "$out/main-job" > "$out/main-job.log" 2>&1
job_rc=$?
timeout 150 $PY benchmarks/query_benchmark.py --only 5 --json "$out/figure5.json" > "$out/figure5.log" 2>&1
bench_rc=$?

status() { [ "$1" -eq 0 ] && echo "ok" || echo "FAILED (exit $1)"; }
echo
echo "== gpu_check summary: $device =="
echo "cuda tests:     $(status $tests_rc)   $(tail -n 1 "$out/tests.log")"
echo "main job:       $(status $job_rc)   $(grep -E 'test accuracy|time  ' "$out/main-job.log" | tr -s ' ' | paste -sd ';' -)"
echo "GPU figure 5:   $(status $bench_rc)"
grep -E 'images/s' "$out/figure5.log" | sed 's/^/    /'
[ $tests_rc -eq 0 ] && [ $job_rc -eq 0 ] && [ $bench_rc -eq 0 ]
