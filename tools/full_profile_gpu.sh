#!/usr/bin/env bash
# Full-profile run on a GPU machine with JAX and no TensorFlow or internet (the project's
# lent machines): installs the carried wheels (keras, namex, optree in .carry/wheels), points
# nucleitut at the carried data pack (.carry/stage1_train_pack.zip, made by
# tools/make_pack.py; or .carry/pack_without_sample.zip, completed here with the package's
# sample by make_pack.py --add-sample) and runs tools/full_profile_gpu.py. Everything it writes is packed into
# OUT/full_profile_run.tar.gz (records/, benchmark.json, histories, log.txt).
#
#   bash tools/full_profile_gpu.sh OUT [MINUTES] [extra options of full_profile_gpu.py]
#
# On a machine with internet and TensorFlow or JAX installed, run full_profile_gpu.py directly.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: full_profile_gpu.sh OUT [MINUTES]}
MINUTES=${2:-9}
if ! python3 -c "import keras" 2>/dev/null; then
  python3 -m pip install -q --no-deps --no-index --target /tmp/nucleitut-site .carry/wheels/*.whl
  export PYTHONPATH=/tmp/nucleitut-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export NUCLEITUT_PROFILE=full NUCLEITUT_CACHE=${NUCLEITUT_CACHE:-/tmp/nucleitut-cache}
export NUCLEITUT_MODELS=${NUCLEITUT_MODELS:-/tmp/nucleitut-models}
if [ -z "${NUCLEITUT_DATA:-}" ] && [ ! -e .carry/stage1_train_pack.zip ] && [ -e .carry/pack_without_sample.zip ]; then
  python3 tools/make_pack.py --add-sample .carry/pack_without_sample.zip /tmp/stage1_train_pack.zip
  export NUCLEITUT_DATA=/tmp/stage1_train_pack.zip
fi
export NUCLEITUT_DATA=${NUCLEITUT_DATA:-$PWD/.carry/stage1_train_pack.zip}
work=$(mktemp -d)
set +e
python3 tools/full_profile_gpu.py --out "$work" --minutes "$MINUTES" "${@:3}" 2>&1 | tee "$work/log.txt"
status=${PIPESTATUS[0]}
set -e
mkdir -p "$OUT"
tar -czf "$OUT/full_profile_run.tar.gz" -C "$work" .
exit "$status"
