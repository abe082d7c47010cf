"""The Table 3 campaign's bookkeeping (tools/campaign.py): which records and trained networks
count as done when a network's training changed after they were made."""

import datetime
import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _campaign():
    spec = importlib.util.spec_from_file_location("campaign", ROOT / "tools" / "campaign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, date):
    path.write_text(json.dumps({"date": date}))


def test_records_older_than_a_training_change_count_as_missing(tmp_path):
    campaign = _campaign()
    since = campaign.RETRAIN["B2"][0]
    before, after = "2026-11-28T16:08:10+00:00", "2026-12-01T10:00:00+00:00"
    assert before < since < after
    for pipeline, date in (("B2", before), ("M4B2", before), ("B1", before), ("M4", after)):
        for tta in ("", "_tta"):
            _write(tmp_path / f"cpu_{pipeline}{tta}.json", date)
    assert not campaign.record_exists(tmp_path, "cpu", "B2", 0)        # trained before the fix
    assert not campaign.record_exists(tmp_path, "cpu", "M4B2", 0)      # a pair with a changed network
    assert campaign.record_exists(tmp_path, "cpu", "B1", 0)            # unchanged network: old is fine
    assert campaign.record_exists(tmp_path, "cpu", "M4", 0)            # made after the fix
    (tmp_path / "cpu_M4_tta.json").unlink()
    assert not campaign.record_exists(tmp_path, "cpu", "M4", 0)        # both records are needed


def test_networks_trained_before_a_change_are_set_aside_and_trained_again(tmp_path):
    campaign = _campaign()
    since = datetime.datetime.fromisoformat(campaign.RETRAIN["B2"][0]).timestamp()
    folders = {}
    for name, finished in (("B2", since - 3600), ("M4", since + 3600), ("B1", since - 3600)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.keras").write_text("weights")
        (folder / "timing.json").write_text("{}")
        os.utime(folder / "timing.json", (finished, finished))
        folders[name] = folder
    assert not campaign.is_trained("B2", folders["B2"])
    assert campaign.is_trained("M4", folders["M4"]) and campaign.is_trained("B1", folders["B1"])
    aside = campaign.set_aside_if_changed("B2", folders["B2"])
    assert aside == tmp_path / f"B2.before-{campaign.RETRAIN['B2'][1]}"
    assert (aside / "model.keras").read_text() == "weights" and not folders["B2"].exists()  # kept, not deleted
    assert campaign.set_aside_if_changed("M4", folders["M4"]) is None and folders["M4"].exists()
    assert campaign.set_aside_if_changed("B1", folders["B1"]) is None and folders["B1"].exists()
    # the changed networks are trained last, after the repeated seeds
    assert campaign.PLAN[-len(campaign.RETRAIN):] == [(name, 0) for name in campaign.RETRAIN]
    assert len(set(campaign.PLAN)) == len(campaign.PLAN)
