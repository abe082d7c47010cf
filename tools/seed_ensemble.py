"""Score pipelines whose networks are each the ensemble of their repeated trainings.

The campaign (``tools/campaign.py``) trains some networks three times (seeds 0, 1, 2). This
command scores, for each pipeline given, the ensemble of those trainings
(:func:`nucleitut.evaluation.evaluate_seed_ensemble`) with and without TTA on the test images,
with the paper's post-processing settings, and writes one record per TTA setting to
``<results>/<profile>_<pipeline>[_tta]_seeds0-1-2.json``. A record that exists is kept.

Usage (from the repository root, in the project's virtual environment)::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip \\
        python tools/seed_ensemble.py --profile cpu --pipelines M3B1 M6B4 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--pipelines", nargs="+", default=["M3B1", "M6B4"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--results", default="results/seed_ensembles")
    parser.add_argument("--data", default=None, help="default: the profile's data ($NUCLEITUT_DATA)")
    args = parser.parse_args(argv)

    from nucleitut import config, data, evaluation

    profile = config.get_profile(args.profile).name
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    dataset = data.load_dataset(args.data, profile=profile)
    for pipeline in args.pipelines:
        names = {tta: results / evaluation.seed_ensemble_record_name(
            {"profile": profile, "pipeline": config.get_pipeline(pipeline).name, "tta": tta, "ensemble_of_seeds": args.seeds})
            for tta in (False, True)}
        missing = [tta for tta, path in names.items() if not path.exists()]
        if not missing:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] scoring {pipeline}, ensemble of seeds {args.seeds}", flush=True)
        for record in evaluation.evaluate_seed_ensemble(pipeline, dataset, args.seeds, tta_values=missing, profile=profile):
            path = names[record["tta"]]
            path.write_text(json.dumps(record, indent=1) + "\n")
            print("  record:", path, flush=True)
    print(f"[{time.strftime('%H:%M:%S')}] done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
