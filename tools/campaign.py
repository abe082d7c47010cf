"""The Table 3 campaign: train every network of the paper's Table 3 (and repeated seeds of
some) in one profile, and score every network and every Figure 9 pair with and without TTA.

Usage (from the repository root, in the project's virtual environment)::

    NUCLEITUT_DATA=../shared/data/stage1_train.zip \\
        python tools/campaign.py --profile cpu --results results > campaign.log 2>&1 &

Each step is skipped when its result exists, so the command can be started again after an
interruption, also on another machine with only the committed records: a network is trained
only while one of its records, or a record of a pair it belongs to, is missing; a network
whose training was killed resumes at its last epoch (training's own backup); a scored
pipeline is not scored again. Order: seed 0 of the networks the book's
first comparisons need (B1, M3, M1, M2, B4, M6), then the other rows of Table 3, then seeds 1
and 2 of B1, M1, M2, M3, B4 and M6, then seeds 1 and 2 of B3 and M5 (the set a and plateau
rows of the findings compare with them; added after the rest had finished), then seeds 3 and
4 of M3 and B1 (the best cpu pipeline's mean over five trainings), then the networks of
:data:`RETRAIN` again.

A network whose training changed after its records were made is listed in :data:`RETRAIN`:
its records, and those of the pairs it belongs to, count as missing when they are older than
the change, and its trained folder is moved aside (``<folder>.before-<commit>``) and trained
anew.

Records: ``<results>/<profile>_<pipeline>[_tta][_tuned][_seed<k>].json``
(see :func:`nucleitut.records.record_name`). Pairs of seed 0 also get a record with
post-processing settings chosen on the validation images (``--tune`` of the command line).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

#: Networks trained again because their training changed: name -> (date of the change, commit).
#: Set a's rescaling labelled the mirrored margin of a shrunk crop as background (fixed in 58e6ef4).
SET_A_FIX = ("2026-11-29T06:14:11+00:00", "58e6ef4")
RETRAIN = {"B2": SET_A_FIX, "M4": SET_A_FIX}

#: (network, seed) in the order they are trained; the networks of RETRAIN come last (seed 0).
PLAN = (
    [(n, 0) for n in ("B1", "M3", "M1", "M2", "B4", "M6", "B3", "M5", "B5", "M7")]
    + [(n, s) for s in (1, 2) for n in ("B1", "M3", "M1", "M2", "B4", "M6")]
    + [(n, s) for s in (1, 2) for n in ("B3", "M5")]
    # The best cpu pipeline so far, M3B1: two more trainings of each network measure its mean better.
    + [(n, s) for s in (3, 4) for n in ("M3", "B1")]
    + [("B2", 0), ("M4", 0)]
)


def _changed_since(pipeline: str) -> str | None:
    """Date of the latest training change of a pipeline's networks (:data:`RETRAIN`), or None."""
    from nucleitut import config

    members = config.PAIRS.get(pipeline, (pipeline,))
    dates = [RETRAIN[n][0] for n in members if n in RETRAIN]
    return max(dates) if dates else None


def record_exists(results: Path, profile: str, pipeline: str, seed: int, tuned: bool = False) -> bool:
    """Both records (with and without TTA) exist and are newer than any change in :data:`RETRAIN`."""
    suffix = ("_tuned" if tuned else "") + (f"_seed{seed}" if seed else "")
    paths = [results / f"{profile}_{pipeline}{tta}{suffix}.json" for tta in ("", "_tta")]
    since = _changed_since(pipeline)
    return all(p.exists() and (since is None or json.loads(p.read_text())["date"] >= since) for p in paths)


def trained_before_change(network: str, directory: Path) -> bool:
    """The network in ``directory`` finished training (modification time of its timing.json) before its change in :data:`RETRAIN`."""
    timing = directory / "timing.json"
    if network not in RETRAIN or not timing.exists():
        return False
    finished = datetime.datetime.fromtimestamp(timing.stat().st_mtime, datetime.timezone.utc)
    return finished < datetime.datetime.fromisoformat(RETRAIN[network][0])


def is_trained(network: str, directory: Path) -> bool:
    """Trained to the end, and not before a change of its training."""
    return (directory / "model.keras").exists() and (directory / "timing.json").exists() \
        and not trained_before_change(network, directory)


def set_aside_if_changed(network: str, directory: Path) -> Path | None:
    """Move a network trained before its change in :data:`RETRAIN` to ``<folder>.before-<commit>``."""
    if not trained_before_change(network, directory):
        return None
    aside = directory.with_name(f"{directory.name}.before-{RETRAIN[network][1]}")
    directory.rename(aside)
    return aside


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--results", default="results")
    parser.add_argument("--data", default=None, help="default: the profile's data ($NUCLEITUT_DATA)")
    parser.add_argument("--only", nargs="*", help="only these steps, e.g. B1:0 M3:1")
    args = parser.parse_args(argv)

    from nucleitut import config, data, evaluation, records, training

    profile = config.get_profile(args.profile).name
    results = Path(args.results)
    dataset = data.load_dataset(args.data, profile=profile)
    split = dataset.split()
    plan = PLAN if not args.only else [(s.split(":")[0].upper(), int(s.split(":")[1])) for s in args.only]
    if not (results / f"{profile}_classical.json").exists():
        print("  record:", records.write_record(evaluation.evaluate_classical(dataset, profile=profile), results), flush=True)
    planned = set(plan)

    def pair_done(pair, seed):
        return record_exists(results, profile, pair, seed) and (seed != 0 or record_exists(results, profile, pair, seed, tuned=True))

    def pairs_to_score(network, seed):
        return [pair for pair, members in config.PAIRS.items()
                if network in members and all((n, seed) in planned for n in members) and not pair_done(pair, seed)]

    for network, seed in plan:
        directory = config.model_dir(network, profile, seed)
        if record_exists(results, profile, network, seed) and not pairs_to_score(network, seed):
            continue  # scored, and every pair it belongs to too: nothing needs this network any more
        aside = set_aside_if_changed(network, directory)
        if aside:
            print(f"[{time.strftime('%H:%M:%S')}] {network} seed {seed} was trained before {RETRAIN[network][1]}: moved to {aside}",
                  flush=True)
        if not is_trained(network, directory):
            print(f"[{time.strftime('%H:%M:%S')}] training {network} seed {seed} -> {directory}", flush=True)
            cfg = config.training_config(network, profile, seed=seed)
            training.train(cfg, dataset, directory, split=split)
        if not record_exists(results, profile, network, seed):
            print(f"[{time.strftime('%H:%M:%S')}] scoring {network} seed {seed}", flush=True)
            for record in evaluation.evaluate_pipelines([network], dataset, profile=profile, seed=seed):
                print("  record:", records.write_record(record, results), flush=True)
        for pair in pairs_to_score(network, seed):
            if not all(is_trained(n, config.model_dir(n, profile, seed)) for n in config.PAIRS[pair]):
                continue  # the partner comes later in the plan
            print(f"[{time.strftime('%H:%M:%S')}] scoring {pair} seed {seed}", flush=True)
            scored = evaluation.evaluate_pipelines(
                [pair], dataset, profile=profile, seed=seed, tune_on=split.val if seed == 0 else None
            )
            for record in scored:
                print("  record:", records.write_record(record, results), flush=True)
    print(f"[{time.strftime('%H:%M:%S')}] campaign done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
