#!/usr/bin/env bash
# The GPU check of issue 10 (about 7 minutes on one H200 with the default STEPS=150; step timeouts 330 +
# 200 + 150 + 150 s):
#   1. STEPS (150) outer steps of the full preset (299 px, real batch 1024, T = 30) on full-size
#      synthetic patches: seconds per outer step, peak GPU memory, data-wait share (benchmarks/gpu_check.py);
#   1b. 40 steps of the same with cuDNN autotuning and TF32 float32 matmuls, 5 of them profiled (operator
#      table in one_gpu_tuned.profile.txt): the H200 of 2026-12-04 ran 1.67 s per step, 14x the projection;
#   2. a 2-rank NCCL DDP run of the same (50 steps, global batch split) when 2 GPUs are visible;
#   3. the tests marked `gpu`.
# Usage:  benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]   (in any order)
#   --dry-run: tiny sizes on the CPU (no GPU needed): checks that every part runs end to end.
#   Environment: PYTHON (default .venv/bin/python when there, else python), STEPS (150), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=""
FOLDER=""
for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --dry-run) DRY="--dry-run" ;;
    -*) echo "gpu_check.sh: unknown option $arg (--help lists them; STEPS=N sets the steps)" >&2; exit 2 ;;
    *) if [[ -n "$FOLDER" ]]; then echo "gpu_check.sh: one output folder, got $FOLDER and $arg" >&2; exit 2; fi
       FOLDER="$arg" ;;
  esac
done
OUT="${FOLDER:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT"
if [[ -x .venv/bin/python ]]; then PY="${PYTHON:-.venv/bin/python}"; else PY="${PYTHON:-python}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=disabled
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
NGPU=0
if command -v nvidia-smi >/dev/null 2>&1; then NGPU=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0); fi
if [[ -z "$DRY" && "$NGPU" -lt 1 ]]; then
  echo "no GPU visible: run with --dry-run on a CPU" >&2; exit 2
fi
echo "== 1/3 full preset, one device ($([[ -n $DRY ]] && echo dry run || echo "$NGPU GPU(s) visible"))"
timeout 330 "$PY" benchmarks/gpu_check.py $DRY --steps "${STEPS:-150}" --json "$OUT/one_gpu.json"

echo "== 1b/3 the same with cuDNN autotuning and TF32 matmuls, $([[ -n $DRY ]] && echo 6 || echo 40) steps, 5 profiled"
timeout 200 "$PY" benchmarks/gpu_check.py $DRY --steps 40 --cudnn-benchmark --matmul-precision high \
  --profile 5 --json "$OUT/one_gpu_tuned.json"

if [[ -n "$DRY" || "$NGPU" -ge 2 ]]; then
  echo "== 2/3 two ranks (DDP, global real batch split across ranks)"
  if [[ -n "$DRY" ]]; then
    EXTRA=(trainer=ddp_sim trainer.strategy.start_method=popen)
  else
    EXTRA=(trainer=ddp trainer.devices=2 trainer.strategy.timeout.seconds=300)
  fi
  timeout 150 "$PY" -m torch.distributed.run --standalone --nproc-per-node=2 benchmarks/gpu_check.py $DRY \
    --steps 50 --json "$OUT/two_gpus.json" "${EXTRA[@]}" distill.batch_real_per_rank=false
else
  echo "== 2/3 skipped: fewer than 2 GPUs"
fi

echo "== 3/3 tests marked gpu"
if [[ -n "$DRY" ]]; then
  timeout 120 "$PY" -m pytest -q -m gpu tests/distillation/test_gpu.py -p no:cacheprovider || [[ $? -eq 5 ]]
else
  # only the files that carry the marker: a package that other tests need (pyjpegls, say) and a GPU
  # machine lacks cannot stop the collection
  mapfile -t GPU_TESTS < <(grep -rl "pytest.mark.gpu" tests --include="test_*.py")
  timeout 150 "$PY" -m pytest -q -m gpu "${GPU_TESTS[@]}" -p no:cacheprovider
fi
echo "results in $OUT/"
