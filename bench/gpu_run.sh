#!/usr/bin/env bash
# One script for a GPU session: build, test the Triton kernels and the CUDA beam step natively,
# compile report, benchmarks (kernels and beam search).
#
#   bench/gpu_run.sh            # everything (about 6-9 minutes on an H100)
#   bench/gpu_run.sh tests      # build + native tests only
#   bench/gpu_run.sh bench      # compile report + benchmarks only
#
# Logs and JSON go to $OUT (the device tool's output folder) or bench/results/gpu_run/; the
# benchmark records are also appended to bench/results/{rq,infonce}.json. A short summary is
# printed last, because only the end of the output may come back.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${1:-all}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # bench scripts and tests import mqlrec even without an install
LOG_DIR="${OUT:-$PWD/bench/results/gpu_run}"
mkdir -p "$LOG_DIR"
SUMMARY="$LOG_DIR/summary.txt"
: > "$SUMMARY"

python - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import torch, triton
assert torch.cuda.is_available(), "no CUDA device visible to torch: this script is for a GPU machine"
print(f"# {torch.cuda.get_device_name()}  torch {torch.__version__} (CUDA {torch.version.cuda})  triton {triton.__version__}")
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv | tee -a "$SUMMARY" || true

if [[ "$STAGE" == all || "$STAGE" == tests ]]; then
  # Editable build (C++ extension too, with CUDA when nvcc is present); skipped if already importable.
  # Without one, kernels/ is not importable as mqlrec.kernels; on a throwaway machine where the build
  # cannot run (no build tools, no network), a symlink in this copy of the tree stands in for it.
  if ! python -c "import mqlrec.kernels" 2>/dev/null; then
    pip install --no-build-isolation --no-deps -e . -q \
      || { echo "# editable install failed: linking mqlrec/kernels -> ../kernels in this copy" | tee -a "$SUMMARY"; ln -sfn ../kernels mqlrec/kernels; }
  fi
  # MQLREC_TRITON_NATIVE=1: tests/conftest.py then leaves TRITON_INTERPRET unset, kernels compile for the GPU.
  MQLREC_TRITON_NATIVE=1 python -m pytest -q tests/test_kernels_rq.py tests/test_kernels_infonce.py \
      tests/test_kernels_dispatch.py tests/test_ops_reference.py 2>&1 | tee "$LOG_DIR/tests.txt" | tail -5
  tail -1 "$LOG_DIR/tests.txt" | sed 's/^/# native tests: /' >> "$SUMMARY"
  # the CUDA beam step against the C++ / torch references, and the whole search against HF, on the GPU
  python -m pytest -q tests/test_beam_step.py tests/test_generate.py 2>&1 | tee "$LOG_DIR/tests_beam.txt" | tail -3
  tail -1 "$LOG_DIR/tests_beam.txt" | sed 's/^/# beam tests: /' >> "$SUMMARY"
  MQLREC_TRITON_NATIVE=1 python -m pytest -q -m benchmark tests/test_bench_kernels.py --benchmark-enable \
      --benchmark-json "$LOG_DIR/pytest_benchmark.json" 2>&1 | tail -12 | tee -a "$LOG_DIR/tests.txt"
fi

if [[ "$STAGE" == all || "$STAGE" == bench ]]; then
  python -c "import mqlrec.kernels" 2>/dev/null || ln -sfn ../kernels mqlrec/kernels
  python bench/kernel_report.py --arch "$(python -c 'import torch; a, b = torch.cuda.get_device_capability(); print(10 * a + b)')" \
      2>&1 | grep -v Warning | tee "$LOG_DIR/kernel_report.txt"
  run() {  # run NAME ARGS...: one benchmark, full output logged, its table kept for the summary
    local name="$1"; shift
    python "$@" --device cuda 2>&1 | grep -v Warning | tee "$LOG_DIR/$name.txt"
    { echo "## $name: $*"; grep -v '^# appended' "$LOG_DIR/$name.txt" | grep -v '^# device' ; } >> "$SUMMARY"
  }
  # Targets (docs/kernels.md): rq N=1M L=4 K=256 D=32 >= 5x eager and >= 2x torch.compile;
  # info_nce fwd+bwd B=8192 D=128 >= 2x eager with O(B*D) memory.
  run rq_fp32 bench/bench_rq.py
  run rq_bf16 bench/bench_rq.py --dtype bfloat16 --sizes 1000000 10000000 --providers eager triton
  run rq_configs bench/bench_rq.py --sizes 1000000 --providers eager triton --configs \
      "BLOCK_N=64,BLOCK_K=64,num_warps=4" "BLOCK_N=64,BLOCK_K=64,num_warps=8" "BLOCK_N=128,BLOCK_K=32,num_warps=8" \
      "BLOCK_N=128,BLOCK_K=64,num_warps=8,num_stages=3" "BLOCK_N=256,BLOCK_K=64,num_warps=8"
  run infonce_fp32 bench/bench_infonce.py
  run infonce_bf16 bench/bench_infonce.py --dtype bfloat16
  run infonce_pos bench/bench_infonce.py --positive --batches 8192
  # beam search: HF generate vs ours on this GPU, the whole test set timed (target < 5 s, >= 30x HF)
  python bench/bench_beam.py --users 64 --repeats 1 2>&1 | grep -v Warning | tee "$LOG_DIR/beam.txt" | tail -3
  grep '"gpu"' "$LOG_DIR/beam.txt" | sed 's/^/## beam: /' >> "$SUMMARY" || true
  cp bench/results/rq.json bench/results/infonce.json bench/results/beam.json "$LOG_DIR/" 2>/dev/null || true
fi

echo "==================== summary ===================="
cat "$SUMMARY"
