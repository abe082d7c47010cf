"""The Table 3 campaign's resumable plan (tools/campaign.py): what counts as done, from the
records alone."""

import importlib.util
import json
from pathlib import Path

import pytest

from nucleitut import config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def campaign():
    spec = importlib.util.spec_from_file_location("campaign", ROOT / "tools" / "campaign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_records(folder, plan, profile="cpu"):
    """Every record a complete run of ``plan`` writes (with and without TTA; tuned pairs at seed 0)."""
    planned = set(plan)
    names = {(n, s, False) for n, s in plan}
    for pair, members in config.PAIRS.items():
        for seed in {s for _, s in plan}:
            if all((n, seed) in planned for n in members):
                names |= {(pair, seed, False)} | ({(pair, seed, True)} if seed == 0 else set())
    for pipeline, seed, tuned in names:
        suffix = ("_tuned" if tuned else "") + (f"_seed{seed}" if seed else "")
        for tta in ("", "_tta"):
            (folder / f"{profile}_{pipeline}{tta}{suffix}.json").write_text("{}")
    (folder / f"{profile}_classical.json").write_text("{}")


def test_the_plan_trains_every_table3_network_at_seed_0_and_no_step_twice(campaign):
    assert sorted(n for n, s in campaign.PLAN if s == 0) == sorted(config.TABLE3)
    assert len(set(campaign.PLAN)) == len(campaign.PLAN)
    assert set(config.TABLE3) >= {n for n, _ in campaign.PLAN}


def test_a_network_is_needed_while_its_records_or_those_of_its_pairs_are_missing(tmp_path, campaign):
    _write_records(tmp_path, campaign.PLAN)
    assert campaign.pending(tmp_path, "cpu") == []
    (tmp_path / "cpu_M3B1_tta_tuned.json").unlink()   # seed 0 pairs need their tuned records too
    assert campaign.pending(tmp_path, "cpu") == [("B1", 0), ("M3", 0)]
    (tmp_path / "cpu_M3B1_tta_tuned.json").write_text("{}")
    (tmp_path / "cpu_B5_tta.json").unlink()           # both records of a network are needed
    assert campaign.pending(tmp_path, "cpu") == [("B5", 0)]
    (tmp_path / "cpu_B5_tta.json").write_text("{}")
    (tmp_path / "cpu_M3B1_seed4.json").unlink()       # a pair of a repeated seed
    assert campaign.pending(tmp_path, "cpu") == [("M3", 4), ("B1", 4)]


def test_a_pair_is_scored_only_when_the_plan_trains_both_networks_with_that_seed(tmp_path, campaign):
    only_m3 = [("M3", 1)]
    _write_records(tmp_path, only_m3)
    assert campaign.pairs_to_score(tmp_path, "cpu", "M3", 1, only_m3) == []  # B1 seed 1 is not planned here
    assert campaign.pairs_to_score(tmp_path, "cpu", "M3", 1, only_m3 + [("B1", 1)]) == ["M3B1"]


def test_a_complete_plan_ends_without_loading_the_data(tmp_path, campaign, monkeypatch, capsys):
    from nucleitut import data

    def no_data(*args, **kwargs):
        raise AssertionError("a complete campaign loaded the data")

    monkeypatch.setattr(data, "load_dataset", no_data)
    _write_records(tmp_path, campaign.PLAN)
    assert campaign.main(["--profile", "cpu", "--results", str(tmp_path)]) == 0
    assert "campaign complete" in capsys.readouterr().out
    (tmp_path / "cpu_classical.json").unlink()  # the classical record is part of the campaign
    with pytest.raises(AssertionError, match="loaded the data"):
        campaign.main(["--profile", "cpu", "--results", str(tmp_path)])


def test_what_the_committed_records_leave_to_do_was_never_run(campaign):
    # A step listed as pending has none of its own records: a half-deleted or half-written step
    # of the committed campaign would show up here.
    results = ROOT / "results"
    left = campaign.pending(results, "cpu")
    for network, seed in left:
        suffix = f"_seed{seed}" if seed else ""
        assert not any((results / f"cpu_{network}{tta}{suffix}.json").exists() for tta in ("", "_tta")), (network, seed)
    assert len(left) < len(campaign.PLAN)
    json.loads((results / "cpu_classical.json").read_text())
