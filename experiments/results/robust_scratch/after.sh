#!/usr/bin/env bash
# After run.sh: build the candidate reference (reference's post-processing settings) and score it on the
# 40 stratified validation images, then apply the shipping rule written before any score was seen.
set -e
cd /work/main && source .venv/bin/activate
export NUCLEITUT_DATA=/work/shared/data/stage1_train.zip TF_CPP_MIN_LOG_LEVEL=2
R=/work/robust_scratch
[ -e $R/reference/reference.json ] || python tools/make_reference.py --models $R --data "$NUCLEITUT_DATA" --out $R/reference \
   --settings-from-record --record results/reference_2026-11-28/cpu_M3B1_tta_tuned.json > $R/make_reference.log 2>&1
python -m benchmarks.bench_robustness --split val --limit 40 --models $R/reference --resume \
   --out experiments/results/robust_scratch_val.json > $R/bench_val.log 2>&1
python -m experiments.compare_robustness_runs /work/robust_scratch/ref_val.json \
   experiments/results/robust_scratch_val.json | tee $R/compare.txt
