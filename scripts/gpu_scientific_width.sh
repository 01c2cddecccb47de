#!/usr/bin/env bash
# Scientific alone on a lent GPU: choose the text and text + ID models' width (with learning rate,
# dropout, weight decay) on validation, then read test once, three seeds (configs/scientific_width.yaml
# says why). One prepared job inside a time budget (GPU_BUDGET seconds, default 540):
#   1. the two searches side by side (configs/tune/scientific_text_width.yaml and
#      scientific_text_id_width.yaml: 8 trials or 4 minutes each), published to results/tune_*.json;
#   2. a config over configs/scientific_width.yaml with both searches' chosen per-method settings;
#   3. its three seeds side by side, combined and published to results/scientific_width.json, and
#      beside them the reference: three seeds of the text model with the experiment's own settings
#      (configs/scientific_width_reference.yaml), results/scientific_width_reference.json.
# WIDTH_STAGES=reference runs the reference alone (for width rows published before it existed).
# Here, once: bash scripts/gpu_scientific_width.sh --prepare — the encoder and the Scientific data in
# .cache/gpu_carry_width (benchmarks/gpu_check.sh --prepare with this job's carry and data set), and
# Optuna's wheels in .whl/ (the GPU image has no Optuna; together they stay under the device tool's 64 MiB).
# There, with .cache/gpu_carry_width and .whl carried:
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site \
#     bash scripts/gpu_scientific_width.sh
# Output: $OUT/gpu_width.log and $OUT/gpu_width.tar.gz (results/, the chosen config, the run folders
# without their model files), packed after every stage; without $OUT, runs/gpu_width/.
# WIDTH_SCALE=ci is a dry run on any machine (CPU too): CI scale, two trials per search.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=.cache/gpu_carry_width
PY=${PYTHON:-python3}
if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  GPU_CARRY=$CARRY GPU_CARRY_DATASETS=amazon_scientific_cowpirec bash benchmarks/gpu_check.sh --prepare
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/.whl/" "$exclude" 2>/dev/null || echo "/.whl/" >> "$exclude"
  rm -rf .whl.part && mkdir .whl.part
  # Optuna and what it needs beyond the image, at this machine's versions (greenlet only serves
  # SQLAlchemy's asyncio: left out); the GPU image's Python is 3.12
  pins=$($PY -c 'from importlib.metadata import version as v
print(" ".join(f"{n}=={v(n)}" for n in ("optuna", "alembic", "colorlog", "sqlalchemy", "mako")))')
  # shellcheck disable=SC2086
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl.part $pins
  rm -rf .whl && mv .whl.part .whl
  du -sh "$CARRY" .whl
  echo "carry: $CARRY .whl"
  exit 0
fi
SCALE=${WIDTH_SCALE:-full}
STAGES=${WIDTH_STAGES:-all}
[[ "$STAGES" == all || "$STAGES" == reference ]] || { echo "WIDTH_STAGES must be all or reference, got '$STAGES'" >&2; exit 2; }
BUDGET=${GPU_BUDGET:-540}
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "GPU_BUDGET must be whole seconds, got '$BUDGET'" >&2; exit 2; }
[[ "$SCALE" == full || "$SCALE" == ci ]] || { echo "WIDTH_SCALE must be full or ci, got '$SCALE'" >&2; exit 2; }
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
# seconds a stage may take: what is left of the budget less what later stages keep (at least 1: GNU
# timeout reads 0 as no limit at all)
cap() { local l=$(( $(left) - ${1:-0} )); echo $(( l > 1 ? l : 1 )); }
KEEP=${WIDTH_KEEP:-150}   # kept from the searches for the three seeds (the H200's took 97 s)
RES=${OUT:+${TMPDIR:-/tmp}/gpu_width}
RES=${RES:-$ROOT/runs/gpu_width}
rm -rf "$RES"; mkdir -p "$RES/results" "$RES/runs"
exec > >(tee "${OUT:-$RES}/gpu_width.log") 2>&1
pack() {
  [[ -n "${OUT:-}" ]] || return 0
  tar -C "$RES" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.pth' -czf "$OUT/gpu_width.tar.gz.part" . \
    && mv "$OUT/gpu_width.tar.gz.part" "$OUT/gpu_width.tar.gz"
}
trap pack EXIT

source benchmarks/gpu_env.sh || exit 2
if [[ "$STAGES" == all ]] && ! $PY -c "import optuna" 2>/dev/null; then
  echo "no Optuna here: carry .whl (--prepare) and install it first" >&2; exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}   # six processes side by side at most, on 16 cores
if [[ "$SCALE" == full ]] && ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA here: this job is for a GPU (WIDTH_SCALE=ci runs it anywhere as a dry run)" >&2; exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
echo "data: $XDTUTOR_DATA_DIR   scale: $SCALE   budget: $BUDGET s   results: $RES"

if [[ "$STAGES" == all ]]; then
echo "=== 1. the two searches, side by side"
pids=()
for method in text text_id; do
  search=configs/tune/scientific_${method}_width.yaml
  if [[ "$SCALE" == ci ]]; then  # the same search at CI scale, two trials, in the results folder
    sed -e "s|^experiment: ../|experiment: $ROOT/configs/|" -e "s|scale=full|scale=ci|" \
        -e "s|^trials: .*|trials: 2|" "$search" > "$RES/$(basename "$search")"
    search=$RES/$(basename "$search")
  fi
  timeout "$(cap "$KEEP")" $PY -m xdtutor tune "$search" --out "$RES/runs/tune_$method" --publish "$RES/results" \
    > "$RES/tune_$method.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"   # by pid: a bare wait also waits for the tee above, which never ends
for method in text text_id; do tail -n 4 "$RES/tune_$method.log"; done
pack

echo "=== 2. the chosen settings (after $(( $(date +%s) - start )) s)"
timeout 60 $PY - "$RES" "$ROOT" <<'EOF' || exit 1
import json, sys
from pathlib import Path
import yaml
res, root = Path(sys.argv[1]), Path(sys.argv[2])
chosen = {}
for method in ("text", "text_id"):
    found = res / "runs" / f"tune_{method}" / "tune.json"
    if not found.exists():
        sys.exit(f"{found}: the {method} search did not finish")
    chosen.update(json.loads(found.read_text())["per_method"])
config = {"extends": str(root / "configs" / "scientific_width.yaml"), "per_method": chosen}
(res / "scientific_width.yaml").write_text(
    "# configs/scientific_width.yaml with the per-method settings its two searches chose\n"
    + yaml.safe_dump(config, sort_keys=False))
print(yaml.safe_dump(chosen, sort_keys=False), end="")
EOF
pack

fi

echo "=== 3. three seeds side by side, and the reference's (after $(( $(date +%s) - start )) s; $(left) s left)"
(( $(left) >= 30 )) || { echo "the budget of $BUDGET s is spent: the seeds were not run" >&2; exit 1; }
pids=()
launch() {  # launch RUN_PREFIX CONFIG: its three seeds in the background
  for seed in 0 1 2; do
    timeout "$(cap)" $PY -m xdtutor run "$2" --set scale=$SCALE --set "seeds=[$seed]" --set train.progress=false \
      --set encoder.progress=false --out "$RES/runs/$1_s$seed" > "$RES/$1_s$seed.log" 2>&1 &
    pids+=($!)
  done
}
publish() {  # publish RUN_PREFIX NAME: its seeds combined and published (1 on failure, with the logs' ends)
  timeout 120 $PY -m xdtutor combine "$RES"/runs/"$1"_s{0,1,2} --out "$RES/runs/$2" \
    && timeout 120 $PY -m xdtutor publish "$RES/runs/$2" --to "$RES/results" && sed -n '1,25p' "$RES/results/$2.md" \
    && return 0
  for seed in 0 1 2; do echo "--- $1 seed $seed"; tail -n 15 "$RES/$1_s$seed.log"; done
  return 1
}
[[ "$STAGES" == all ]] && launch width "$RES/scientific_width.yaml"
launch reference configs/scientific_width_reference.yaml
wait "${pids[@]}"
status=0
if [[ "$STAGES" == all ]]; then publish width scientific_width || status=1; fi
publish reference scientific_width_reference || status=1
echo "=== done in $(( $(date +%s) - start )) s, status $status"
exit $status
