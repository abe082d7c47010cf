#!/usr/bin/env bash
# CPU from-scratch training of M3 and B1 with the robust set (issue 31); resumable: rerun to continue.
cd /work/main && source .venv/bin/activate
export NUCLEITUT_DATA=/work/shared/data/stage1_train.zip
for net in M3 B1; do
  if [ -e /work/robust_scratch/$net/model.keras ] && [ ! -e /work/robust_scratch/$net/backup ]; then continue; fi
  python -m nucleitut train $net --profile cpu --data "$NUCLEITUT_DATA" --epochs 35 --time-budget 0 \
     --augmentation robust --out /work/robust_scratch/$net >> /work/robust_scratch/$net.log 2>&1 || exit 1
done
/work/robust_scratch/after.sh >> /work/robust_scratch/after.out 2>&1
