#!/usr/bin/env bash
# The shipped reference on the 40 validation images under the current library (baseline for the scratch candidate).
cd /work/main && source .venv/bin/activate
export NUCLEITUT_DATA=/work/shared/data/stage1_train.zip TF_CPP_MIN_LOG_LEVEL=2
python -m benchmarks.bench_robustness --split val --limit 40 --resume --out /work/robust_scratch/ref_val.json > /work/robust_scratch/ref_val.log 2>&1
