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
4 of M3 and B1 (the best cpu pipeline's mean over five trainings). :func:`pending` lists what
is left (with the committed records: seed 2 of B3 and M5, never run); a plan whose records
all exist ends without loading the data.

(B2 and M4 were trained a second time on 2026-11-29, after a fix of augmentation set a in
58e6ef4; the one-time bookkeeping that made their older records count as missing was removed
once their new records were committed, see CHANGELOG.md.)

Records: ``<results>/<profile>_<pipeline>[_tta][_tuned][_seed<k>].json``
(see :func:`nucleitut.records.record_name`). Pairs of seed 0 also get a record with
post-processing settings chosen on the validation images (``--tune`` of the command line).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: (network, seed) in the order they are trained.
PLAN = (
    [(n, 0) for n in ("B1", "M3", "M1", "M2", "B4", "M6", "B2", "M4", "B3", "M5", "B5", "M7")]
    + [(n, s) for s in (1, 2) for n in ("B1", "M3", "M1", "M2", "B4", "M6")]
    + [(n, s) for s in (1, 2) for n in ("B3", "M5")]
    # The best cpu pipeline so far, M3B1: two more trainings of each network measure its mean better.
    + [(n, s) for s in (3, 4) for n in ("M3", "B1")]
)


def record_exists(results: Path, profile: str, pipeline: str, seed: int, tuned: bool = False) -> bool:
    """Both records of a pipeline (with and without TTA) exist."""
    suffix = ("_tuned" if tuned else "") + (f"_seed{seed}" if seed else "")
    return all((results / f"{profile}_{pipeline}{tta}{suffix}.json").exists() for tta in ("", "_tta"))


def is_trained(directory: Path) -> bool:
    """Trained to the end: the network and its timing are saved (an interrupted training has neither)."""
    return (directory / "model.keras").exists() and (directory / "timing.json").exists()


def pairs_to_score(results: Path, profile: str, network: str, seed: int, plan) -> list[str]:
    """The Figure 9 pairs with ``network`` whose records of ``seed`` are missing, among the
    pairs whose every network the plan trains with that seed (seed 0 also needs the tuned records)."""
    from nucleitut import config

    planned = set(plan)

    def done(pair):
        return record_exists(results, profile, pair, seed) and (seed != 0 or record_exists(results, profile, pair, seed, tuned=True))

    return [pair for pair, members in config.PAIRS.items()
            if network in members and all((n, seed) in planned for n in members) and not done(pair)]


def needs_work(results: Path, profile: str, network: str, seed: int, plan) -> bool:
    """A step of ``plan`` has work while the network's records, or those of a pair it belongs
    to, are missing; nothing else needs the network any more."""
    return not record_exists(results, profile, network, seed) or bool(pairs_to_score(results, profile, network, seed, plan))


def pending(results: Path, profile: str, plan=PLAN) -> list[tuple[str, int]]:
    """The steps of ``plan`` that still have work (:func:`needs_work`), in order."""
    return [(network, seed) for network, seed in plan if needs_work(results, profile, network, seed, plan)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--results", default="results")
    parser.add_argument("--data", default=None, help="default: the profile's data ($NUCLEITUT_DATA)")
    parser.add_argument("--only", nargs="*", help="only these steps, e.g. B1:0 M3:1")
    args = parser.parse_args(argv)

    from nucleitut import config

    profile = config.get_profile(args.profile).name
    results = Path(args.results)
    plan = PLAN if not args.only else [(s.split(":")[0].upper(), int(s.split(":")[1])) for s in args.only]
    classical = results / f"{profile}_classical.json"
    if classical.exists() and not pending(results, profile, plan):
        print(f"campaign complete: every record of the plan is in {results}", flush=True)
        return 0  # without loading the data or the training code

    from nucleitut import data, evaluation, records, training

    dataset = data.load_dataset(args.data, profile=profile)
    split = dataset.split()
    if not classical.exists():
        print("  record:", records.write_record(evaluation.evaluate_classical(dataset, profile=profile), results), flush=True)
    for network, seed in plan:
        if not needs_work(results, profile, network, seed, plan):
            continue  # scored, and every pair it belongs to too (checked as the run goes: records appear)
        directory = config.model_dir(network, profile, seed)
        if not is_trained(directory):
            print(f"[{time.strftime('%H:%M:%S')}] training {network} seed {seed} -> {directory}", flush=True)
            cfg = config.training_config(network, profile, seed=seed)
            training.train(cfg, dataset, directory, split=split)
        if not record_exists(results, profile, network, seed):
            print(f"[{time.strftime('%H:%M:%S')}] scoring {network} seed {seed}", flush=True)
            for record in evaluation.evaluate_pipelines([network], dataset, profile=profile, seed=seed):
                print("  record:", records.write_record(record, results), flush=True)
        for pair in pairs_to_score(results, profile, network, seed, plan):
            if not all(is_trained(config.model_dir(n, profile, seed)) for n in config.PAIRS[pair]):
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
