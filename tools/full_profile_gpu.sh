#!/usr/bin/env bash
# Full-profile run on a GPU machine with JAX and no TensorFlow or internet (the project's
# lent machines): sets up Keras and the carried data (tools/gpu_env.sh) and runs
# tools/full_profile_gpu.py. Everything it writes is packed into
# OUT/full_profile_run.tar.gz (records/, benchmark.json, histories, log.txt).
#
#   bash tools/full_profile_gpu.sh OUT [MINUTES] [extra options of full_profile_gpu.py]
#
# On a machine with internet and TensorFlow or JAX installed, run full_profile_gpu.py directly.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: full_profile_gpu.sh OUT [MINUTES]}
MINUTES=${2:-9}
source tools/gpu_env.sh
export NUCLEITUT_PROFILE=full NUCLEITUT_MODELS=${NUCLEITUT_MODELS:-/tmp/nucleitut-models}
work=$(mktemp -d)
set +e
python3 tools/full_profile_gpu.py --out "$work" --minutes "$MINUTES" "${@:3}" 2>&1 | tee "$work/log.txt"
status=${PIPESTATUS[0]}
set -e
mkdir -p "$OUT"
tar -czf "$OUT/full_profile_run.tar.gz" -C "$work" .
exit "$status"
