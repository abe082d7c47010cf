#!/usr/bin/env bash
# Train the reference networks (cpu-profile size: 4 blocks, F=16, 128x128 crops, Table 3's
# learning rates x10 along a cosine over EPOCHS) for more epochs than a 2-core CPU allows, on
# a GPU machine, all networks at once; then build the package's reference on any machine with
# tools/make_reference.py (its docstring has the command).
#
#   bash tools/reference_gpu.sh OUT [EPOCHS] [BUDGET_S] [NETWORK ...]    (default 30 190 M3 B1)
#
# AUGMENTATION=robust (environment) trains with that augmentation set instead of the network's own;
# WORKERS=N feeds each training from N processes (the robust set's operations cost ~2 ms per crop
# on one core, more than a GPU step).
#
# OUT receives <NET>_model.keras (weights and architecture, no optimizer state) and reference_run.tar.gz (each network's log, config.json,
# history.csv and timing.json). BUDGET_S stops a training early (then its learning rate has
# not gone all the way down the cosine; timing.json says so).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: reference_gpu.sh OUT [EPOCHS] [BUDGET_S] [NETWORK ...]}
EPOCHS=${2:-30}
BUDGET=${3:-190}
NETWORKS=("${@:4}")
[ ${#NETWORKS[@]} -gt 0 ] || NETWORKS=(M3 B1)
source tools/gpu_env.sh
export XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 -c "from nucleitut import data; data.load_dataset('$NUCLEITUT_DATA')"  # decode once, into the cache
work=$(mktemp -d)
pids=()
for network in "${NETWORKS[@]}"; do
  python3 -m nucleitut train "$network" --profile cpu --data "$NUCLEITUT_DATA" --epochs "$EPOCHS" \
    --time-budget "$BUDGET" ${AUGMENTATION:+--augmentation "$AUGMENTATION"} ${WORKERS:+--workers "$WORKERS"} --out "$work/$network" >"$work/$network.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
mkdir -p "$OUT"
for network in "${NETWORKS[@]}"; do
  tail -3 "$work/$network.log"
  if [ -e "$work/$network/model.keras" ]; then  # without the optimizer's state: a quarter of the size
    python3 -c "import keras, sys; keras.saving.load_model(sys.argv[1], compile=False).save(sys.argv[2])" \
      "$work/$network/model.keras" "$OUT/${network}_model.keras"
  fi
  rm -rf "$work/$network/backup" "$work/$network/model.keras" "$work/$network/best.weights.h5"
done
tar -czf "$OUT/reference_run.tar.gz" -C "$work" .
exit "$status"
