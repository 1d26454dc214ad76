#!/usr/bin/env bash
# Every GPU check of the project in one run, for a CUDA machine that may have no network:
# the environment, the CUDA-marked tests, every theorem at the full budget on the GPU (capped
# in wall time), and the speed benchmarks on the GPU with the CPU figure beside them.
# Everything printed also goes to OUTDIR/log.txt; the full-budget report is
# OUTDIR/full-budget.json (per theorem: verdict and seconds).
#
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]        (default OUTDIR: gpu-check)
#   WHEELS=DIR     install the dependencies that the machine lacks from the wheels in DIR, with
#                  no package index (e.g. cvxpy and its solvers, gensim), into OUTDIR's site/
#   LIMIT=SECONDS  wall-clock cap of the full-budget run (default 240): it is then stopped with
#                  SIGTERM, which writes the report of the theorems that finished, marked
#                  incomplete
#   DEVICE=cuda    cpu: a dry run of this script on a machine without a GPU
# Its own steps take about 5 minutes on top of LIMIT; a step that fails is reported and the
# script goes on to the next one, so one run gives every figure it can.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
device=${DEVICE:-cuda}
limit=${LIMIT:-240}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec > >(tee "$out/log.txt") 2>&1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
step() {  # step NAME COMMAND...: run, time and report one step
    local name=$1 start=$SECONDS
    shift
    echo "=== $name"
    "$@"
    local code=$?
    echo "=== $name: exit $code after $((SECONDS - start)) s"
    [ "$code" -eq 0 ] || status=1
}

step "environment" python3 -c "
import platform, torch
print('python', platform.python_version(), ' torch', torch.__version__,
      ' cuda available:', torch.cuda.is_available())
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(props.name, round(props.total_memory / 2**30, 1), 'GiB,',
          props.multi_processor_count, 'multiprocessors')"
if [ -n "${WHEELS:-}" ]; then
    step "dependencies from $WHEELS" python3 -m pip install -q --no-index --no-deps \
        --no-compile --target "$out/site" "$WHEELS"/*.whl
    export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# the project's own metadata (its papers are found through entry points); no index, no build
# isolation, no dependencies: nothing is downloaded
step "install" python3 -m pip install -q --no-index --no-deps --no-build-isolation \
    --target "$out/project" .
export PYTHONPATH="$PWD:$out/project${PYTHONPATH:+:$PYTHONPATH}"
step "import check" python3 -m verify --list
step "CUDA-marked tests" python3 -m pytest -q -m cuda tests
step "every theorem, full budget, $device (at most $limit s)" \
    timeout -s TERM "$limit" python3 -m verify --all --budget full --device "$device" \
    --allow-expensive --json "$out/full-budget.json"
step "Markov step, $device" python3 benchmarks/markov_steps.py --device "$device" --rounds 5
step "Markov step, cpu" python3 benchmarks/markov_steps.py --device cpu --rounds 3 --steps 10
step "seed ensembles, $device" python3 benchmarks/seed_ensembles.py --device "$device" \
    --steps 300
echo "figures and logs in $out; overall exit $status"
exit "$status"
