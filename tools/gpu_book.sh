#!/usr/bin/env bash
# The whole book under nbval on one GPU machine, in the gpu profile (issue 32): Table 3
# networks, 256x256 crops, the paper's learning rates, bfloat16, every training stopped by the
# profile's time budget (nucleitut/config.py: GPU_TIME_BUDGET_S), within 8 minutes.
#
# 1. Here, on a machine with pip and the full data set (../shared/data or $NUCLEITUT_DATA):
#      bash tools/gpu_book.sh prepare
#    writes .carry/gpu_book/ (ignored by git): site.tar.xz (Keras, nbval, Jupyter's kernel and
#    client, ipywidgets, myst-nb's glue, the JPEG XL plugin: built for CPython 3.12, x86-64),
#    data.zip (the full data set without the package's sample, lossless JPEG XL), data.json
#    (digest of the decoded data), commit.txt; and says whether the working tree plus that
#    folder fit the 64 MiB a device call carries.
# 2. On the GPU machine (it has JAX, no TensorFlow, no Keras, no Jupyter, no internet), with
#    the device tool: command `bash tools/gpu_book.sh run "$OUT"`, carry [".carry/gpu_book"],
#    timeout_s 600 (results/README.md, "GPU edition"). Everything it writes goes to OUT:
#    summary.json, junit.xml, figure9.png, log.txt and run_<k>.tar.gz (executed chapters,
#    training histories and timings, evaluation records, logs).
# 3. Here again: bash tools/gpu_book.sh fetch FILES_AT     -> results/gpu_book_<date>/
#                bash tools/build_from_executed.sh results/gpu_book_<date>   (the GPU edition)
#
# Settings of `run` (environment): GPU_BOOK_PROFILE (default gpu), GPU_BOOK_DATA (full or
# sample), NUCLEITUT_TIME_BUDGET (seconds per network instead of the profile's),
# GPU_BOOK_NETWORKS (default: the six the chapters load), GPU_BOOK_SERIAL=1 (one
# `pytest --nbval-lax book` after the trainings instead of the chapters at once),
# GPU_BOOK_BENCH (networks timed alone first, default B1; "" for none), GPU_BOOK_DEADLINE
# (seconds after the start at which whatever still runs is stopped, default 540),
# GPU_BOOK_CHAPTERS (only these chapters, e.g. 01_data; rehearsals), PYTHON.
#
# Rehearsal on a CPU, with a Python 3.12 that has only what the GPU machine has:
#   GPU_BOOK_PROFILE=quick GPU_BOOK_DATA=sample NUCLEITUT_TIME_BUDGET=5 PYTHON=/tmp/gpu312/bin/python \
#     bash tools/gpu_book.sh run /tmp/gpu_book_out
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARRY=.carry/gpu_book

prepare() {
  local py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  "$py" tools/gpu_book.py prepare "$@"
}

fetch() {
  local py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  "$py" tools/gpu_book.py fetch "$@"
}

stamp() { python3 -c 'import time; print(f"{time.time():.1f}")'; }

run_inner() {
  local out=$1 py=${PYTHON:-python3} work=${GPU_BOOK_WORK:-/tmp/gpu_book}
  rm -rf "$work"
  mkdir -p "$work/logs" "$out"
  export GPU_BOOK_START PYTHONUNBUFFERED=1 KERAS_BACKEND=${KERAS_BACKEND:-jax} TF_CPP_MIN_LOG_LEVEL=2
  export NUCLEITUT_PROFILE=${GPU_BOOK_PROFILE:-gpu}
  export NUCLEITUT_CACHE=$work/cache NUCLEITUT_MODELS=$work/models
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
  [ "${GPU_BOOK_JAX_CACHE:-1}" = 1 ] && export JAX_COMPILATION_CACHE_DIR=$work/jax_cache
  if [ -z "${NUCLEITUT_COMMIT:-}" ] && [ -e "$CARRY/commit.txt" ]; then
    NUCLEITUT_COMMIT=$(cat "$CARRY/commit.txt")
    export NUCLEITUT_COMMIT
  fi
  local data=${GPU_BOOK_DATA:-full} need="import keras, nbval, ipykernel, ipywidgets, myst_nb"
  [ "$data" = full ] && need="$need, pillow_jxl"
  echo "gpu_book: $(date -u +%FT%TZ), python $($py -c 'import sys; print(sys.version.split()[0])'), profile $NUCLEITUT_PROFILE, data $data, commit ${NUCLEITUT_COMMIT:-?}"
  if ! "$py" -c "$need" 2>/dev/null; then
    mkdir -p /tmp/gpu_book_site
    tar -xJf "$CARRY/site.tar.xz" -C /tmp/gpu_book_site || return 1
    export PYTHONPATH=/tmp/gpu_book_site${PYTHONPATH:+:$PYTHONPATH} GPU_BOOK_SITE=/tmp/gpu_book_site
    "$py" -c "$need" || return 1
  fi
  export PYTHONPATH=$ROOT:$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 >"$work/nvidia_smi_gpu.txt"
    echo "gpu_book: $(cat "$work/nvidia_smi_gpu.txt")"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$work/nvidia_smi.csv" 2>/dev/null &
    SMI=$!
  fi
  local bench_pid=""
  if [ -n "${GPU_BOOK_BENCH-B1}" ]; then
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 "$py" tools/gpu_book.py bench "$work/bench.json" --networks "${GPU_BOOK_BENCH-B1}" \
      >"$work/logs/bench.log" 2>&1 &
    bench_pid=$!
  fi
  local t_data t_ready t_book
  t_data=$(stamp)
  if [ "$data" = sample ]; then
    export NUCLEITUT_DATA=$ROOT/nucleitut/sample/bbbc038_sample.zip
    "$py" -c "from nucleitut import data; data.load_dataset('$NUCLEITUT_DATA')" || return 1
  else
    "$py" tools/gpu_book.py unpack "$CARRY" "$work/stage1_train_pack.zip" || return 1
    export NUCLEITUT_DATA=$work/stage1_train_pack.zip
  fi
  if [ -n "$bench_pid" ]; then
    wait "$bench_pid" || { echo "gpu_book: the benchmark failed:"; tail -5 "$work/logs/bench.log"; }
    grep "bench " "$work/logs/bench.log"
  fi
  t_ready=$(stamp)
  "$py" tools/gpu_book.py book "$work" ${GPU_BOOK_NETWORKS:+--networks "$GPU_BOOK_NETWORKS"}
  t_book=$(stamp)
  python3 -c 'import json, sys; s, d, r, b = map(float, sys.argv[1:]); print(json.dumps({"packages_s": round(d - s, 1),
    "data_and_bench_s": round(r - d, 1), "trainings_and_chapters_s": round(b - r, 1)}))' \
    "$GPU_BOOK_START" "$t_data" "$t_ready" "$t_book" >"$work/stages.json"
  [ -n "${SMI:-}" ] && kill "$SMI" 2>/dev/null
  "$py" tools/gpu_book.py summary "$work" "$out"
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  fetch) shift; fetch "$@" ;;
  run)
    OUT=${2:?usage: gpu_book.sh run OUT}
    GPU_BOOK_START=${GPU_BOOK_START:-$(stamp)}
    mkdir -p "$OUT"
    run_inner "$OUT" 2>&1 | tee "$OUT/log.txt"
    exit "${PIPESTATUS[0]}"
    ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2 ;;
esac
