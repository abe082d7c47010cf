"""Tests of nucleitut.records: reading/writing, seed summaries, Figure 9 and the findings table."""

import json
import zlib

import numpy as np
import pytest

from nucleitut import config, records


N_IMAGES = 20
#: How hard each test image is, shared by every pipeline (zero mean): differences between
#: pipelines are paired over images, as in the stored records.
DIFFICULTY = np.linspace(-0.2, 0.2, N_IMAGES)


def record(pipeline, score, tta=False, seed=0, profile="cpu", networks=None, tuned=False, noise=0.01):
    """A record whose per-image scores average to ``score``. A training's own noise depends on
    pipeline and seed only, so its records with and without TTA differ by a constant."""
    chosen = "validation: best mean score over 109 images" if tuned else "defaults"
    rng = np.random.default_rng(zlib.crc32(f"{pipeline}/{seed}/{profile}".encode()))
    own = rng.normal(0, noise, N_IMAGES)
    per_image = score + DIFFICULTY + own - own.mean()
    return {"pipeline": pipeline, "tta": tta, "seed": seed, "profile": profile, "n_images": N_IMAGES,
            "mean": {"kaggle_score": score}, "networks": networks or {}, "postprocess": {"chosen_on": chosen},
            "totals": {"split": 0, "merged": int(round(100 * (1 - score))), "missed": 0, "spurious": 0},
            "per_image": [{"id": f"img{k}", "kaggle_score": float(v)} for k, v in enumerate(per_image)]}


def campaign(m3b1=(0.60, 0.61, 0.62), m2=(0.50, 0.52, 0.51), m1=(0.40, 0.41, 0.42), tta_gain=0.01, profile="cpu"):
    """Records shaped like the Table 3 campaign's: several seeds of some rows, one of others."""
    rows = []
    for pipeline, scores in (("M3B1", m3b1), ("M2", m2), ("M1", m1)):
        for seed, score in enumerate(scores):
            rows += [record(pipeline, score, False, seed, profile), record(pipeline, score + tta_gain, True, seed, profile)]
    for pipeline, score in (("M6B4", 0.70), ("M7B5", 0.69), ("B2", 0.50), ("B3", 0.55), ("M4B2", 0.60), ("M5B3", 0.64),
                            ("B4", 0.56)):
        rows += [record(pipeline, score, False, 0, profile), record(pipeline, score + tta_gain, True, 0, profile)]
    for pipeline in ("B1", "B5", "M3", "M4", "M5", "M6", "M7"):  # the rest of Table 3, trained once
        rows += [record(pipeline, 0.3, False, 0, profile), record(pipeline, 0.3 + tta_gain, True, 0, profile)]
    rows.append(record("classical", 0.44, profile=profile))
    return rows


def by_claim(table, profile="cpu"):
    return {row["claim"]: row for row in table if row["profile"] == profile}


def timing_file(tmp_path, networks, profile="cpu"):
    path = tmp_path / "speed.json"
    path.write_text(json.dumps({"profile": profile, "date": "2026-11-29T03:00:00", "networks": networks}))
    return records.read_timings(path)


def rounds(train, predict):
    return {"ms_per_crop": float(np.median(train)), "predict_ms_per_crop": float(np.median(predict)),
            "train_rounds": list(train), "predict_rounds": list(predict)}


def test_summary_gives_mean_and_range_over_seeds():
    rows = {(r["label"], r["tta"]): r for r in records.summary(campaign())}
    assert rows[("M2", False)]["n_seeds"] == 3 and rows[("M2", False)]["seeds"] == [0, 1, 2]
    assert rows[("M2", False)]["mean"] == pytest.approx(0.51) and rows[("M2", False)]["min"] == 0.50
    assert rows[("M6B4", True)]["n_seeds"] == 1


def test_verdict_follows_where_the_interval_lies():
    assert records.verdict(0.001, 0.02) == "supported"
    assert records.verdict(-0.02, -0.001) == "contradicted"
    assert records.verdict(-0.01, 0.01) == records.verdict(0.0, 0.01) == "undecided"


def test_bootstrap_interval_is_seeded_and_shrinks_with_less_noise():
    rng = np.random.default_rng(1)
    noisy, calm = 0.01 + rng.normal(0, 0.05, 100), 0.01 + rng.normal(0, 0.005, 100)
    assert records.bootstrap_interval(noisy) == records.bootstrap_interval(noisy)
    low, high = records.bootstrap_interval(noisy)
    assert low < np.mean(noisy) < high and low < 0, "a small gain under large noise: the interval holds 0"
    calm_low, calm_high = records.bootstrap_interval(calm)
    assert 0 < calm_low and calm_high - calm_low < (high - low) / 5


def test_findings_verdicts_are_computed_from_the_records():
    table = by_claim(records.findings(campaign()))
    assert len(table) == 8 and all(row["verdict"] in records.VERDICTS for row in table.values())
    assert table["M3B1 beats M2 and M1"]["verdict"] == "supported"
    # Three trainings each: a Welch t-interval over the trainings, printed with the means.
    assert "M3B1 0.610 (3) vs M2 0.510 (3): +0.100 [" in table["M3B1 beats M2 and M1"]["ours"]
    assert "(t over trainings)" in table["M3B1 beats M2 and M1"]["ours"]
    assert table["borders beat boundaries (M2 vs M1)"]["verdict"] == "supported"
    assert table["TTA improves every network"]["verdict"] == "supported"
    assert "TTA raised the score of 23 of 23 trainings" in table["TTA improves every network"]["ours"]
    assert table["M6B4 scores highest"]["verdict"] == "supported"
    assert table["set a can worsen accuracy (B2 vs B3, M4B2 vs M5B3)"]["verdict"] == "supported"
    # Pipelines trained once: the interval comes from the test images alone, and says so.
    assert "(images only)" in table["set a can worsen accuracy (B2 vs B3, M4B2 vs M5B3)"]["ours"]
    assert "instead" not in table["M6B4 scores highest"]["paper"] and table["M6B4 scores highest"]["where"] == "section 4.6"
    assert table["doubled starting rate (B4 vs B3, M6B4 vs M5B3)"]["pipelines"] == ("B4", "B3", "M6B4", "M5B3")


def test_a_clear_difference_is_supported_or_contradicted_and_an_overlap_is_undecided():
    worse = by_claim(records.findings(campaign(m3b1=(0.45, 0.46, 0.47))))
    assert worse["M3B1 beats M2 and M1"]["verdict"] == "contradicted"
    overlap = by_claim(records.findings(campaign(m3b1=(0.49, 0.52, 0.55))))
    part = overlap["M3B1 beats M2 and M1"]["parts"][0]
    assert overlap["M3B1 beats M2 and M1"]["verdict"] == "undecided" and part["low"] < 0 < part["high"]
    assert f"[{part['low']:+.3f}, {part['high']:+.3f}]" in overlap["M3B1 beats M2 and M1"]["ours"]
    # Trained once each: 0.05 apart over 20 images is clear, 0.001 apart is not.
    once = [record("B3", 0.55), record("B2", 0.50), record("B4", 0.551)]
    assert records.compare(once, "B3", "B2", False)["verdict"] == "supported"
    assert records.compare(once, "B2", "B3", False)["verdict"] == "contradicted"
    close = records.compare(once, "B4", "B3", False)
    assert close["verdict"] == "undecided" and close["method"] == records.IMAGES_ONLY
    missing = by_claim(records.findings([r for r in campaign() if r["pipeline"] != "M6B4"]))
    assert missing["M6B4 scores highest"]["verdict"] == "not measured yet"
    assert missing["TTA improves every network"]["verdict"] == "not measured yet"


def test_the_interval_switches_to_trainings_once_both_pipelines_have_three():
    rows = [record("B3", 0.55, seed=s) for s in range(3)] + [record("B2", 0.50, seed=s) for s in range(2)]
    assert records.compare(rows, "B3", "B2", False)["method"] == records.IMAGES_ONLY
    rows.append(record("B2", 0.50, seed=2))
    assert records.compare(rows, "B3", "B2", False)["method"] == records.T_TRAININGS
    # Three trainings that disagree among themselves more than the pipelines do: undecided,
    # although every training of B3 has its own images far apart from B2's.
    spread = ([record("B3", s, seed=k) for k, s in enumerate((0.40, 0.60, 0.55))]
              + [record("B2", s, seed=k) for k, s in enumerate((0.45, 0.58, 0.50))])
    assert records.compare(spread, "B3", "B2", False)["verdict"] == "undecided"


def test_more_trainings_of_one_pipeline_never_change_a_row_that_does_not_involve_it(tmp_path):
    timings = timing_file(tmp_path, {"M7": rounds([10, 11, 12], [3, 3.1, 3.2]), "M6": rounds([20, 22, 21], [6, 6.2, 6.1]),
                                     "B5": rounds([9, 9.5, 9.2], [3, 3, 3.1]), "B4": rounds([19, 20, 18], [6, 6, 6.3])})
    base = records.findings(campaign(), timings)
    changed_some = set()
    for pipeline in list(config.TABLE3) + list(config.PAIRS) + ["M5B1"]:  # M5B1: a pair of no row
        extra = []
        for seed, score in zip((7, 8, 9), (0.95, 0.05, 0.90)):  # far from anything else, and TTA hurts them
            extra += [record(pipeline, score, False, seed), record(pipeline, score - 0.2, True, seed)]
        after = records.findings(campaign() + extra, timings)
        for old, new in zip(base, after):
            assert (old["profile"], old["claim"]) == (new["profile"], new["claim"])
            if pipeline not in old["pipelines"]:
                assert (new["verdict"], new["ours"]) == (old["verdict"], old["ours"]), f"{pipeline} changed {old['claim']}"
            elif new["verdict"] != old["verdict"]:
                changed_some.add(old["claim"])
    # The rows that do involve the pipeline react (the test would catch a frozen table too).
    assert {"borders beat boundaries (M2 vs M1)", "TTA improves every network", "M7B5 as accurate as M6B4"} <= changed_some


def test_tta_is_judged_paired_per_training_not_against_the_spread_between_trainings():
    # Trainings 0.2 apart, TTA worth 0.005 on each: paired, the small gain is clear.
    rows = []
    for seed, score in enumerate((0.3, 0.5, 0.7)):
        rows += [record("M2", score, False, seed), record("M2", score + 0.005, True, seed)]
    gains = records.tta_gains(rows)
    assert [g["verdict"] for g in gains] == ["supported"] * 3 and gains[0]["gain"] == pytest.approx(0.005)
    # In the findings: one training that TTA made worse contradicts "every network", and is named.
    hurt = campaign()
    for r in hurt:
        if r["pipeline"] == "M1" and r["seed"] == 2 and r["tta"]:
            r["per_image"] = [{**row, "kaggle_score": row["kaggle_score"] - 0.02} for row in r["per_image"]]
    row = by_claim(records.findings(hurt))["TTA improves every network"]
    assert row["verdict"] == "contradicted" and "M1 seed 2 -0.010 [-0.010, -0.010]" in row["ours"]
    assert "22 of 23 trainings" in row["ours"]
    # A training that TTA leaves unchanged: TTA does not improve every network, nor does it hurt one.
    tied = by_claim(records.findings(campaign(tta_gain=0.0)))["TTA improves every network"]
    assert tied["verdict"] == "undecided"


def test_speed_comes_from_idle_timings_only_paired_by_round(tmp_path):
    row = lambda table: by_claim(table)["M7 and B5 faster than M6 and B4"]
    # The records' own epoch times are not a source: without a timing file the claim is open.
    networks = {"M7": {"ms_per_crop": 10.0, "predict_ms_per_crop": 3.0}, "M6": {"ms_per_crop": 20.0, "predict_ms_per_crop": 6.0}}
    assert row(records.findings(campaign() + [record("M7B5", 0.69, networks=networks, seed=5)]))["verdict"] == "not measured yet"
    fast = {"M7": rounds([10, 11, 12], [3, 3.1, 3.2]), "M6": rounds([20, 22, 21], [6, 6.2, 6.1]),
            "B5": rounds([9, 9.5, 9.2], [3, 3, 3.1]), "B4": rounds([19, 20, 18], [6, 6, 6.3])}
    speed = row(records.findings(campaign(), timing_file(tmp_path, fast)))
    assert speed["verdict"] == "supported" and "training M7 11.0 ms [10.0-12.0, 3 rounds] vs M6 21.0 ms" in speed["ours"]
    assert "(t over rounds)" in speed["ours"]
    # A noisy round, slower for the faster network: one machine hiccup makes the rounds disagree.
    noisy = {**fast, "M7": rounds([10, 40, 12], [3, 3.1, 3.2])}
    assert row(records.findings(campaign(), timing_file(tmp_path, noisy)))["verdict"] == "undecided"
    slower = {**fast, "M7": rounds([30, 32, 31], [9, 9.2, 9.1])}
    assert row(records.findings(campaign(), timing_file(tmp_path, slower)))["verdict"] == "contradicted"
    # Timings of one profile say nothing about another.
    both = records.findings(campaign() + campaign(profile="full"), timing_file(tmp_path, fast))
    assert by_claim(both, "full")["M7 and B5 faster than M6 and B4"]["verdict"] == "not measured yet"
    assert records.read_timings(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a timing file"):
        records.read_timings(tmp_path / "bad.json")
    assert records.describe_timing(fast["M7"], "predict") == "3.1 ms [3.0-3.2, 3 rounds]"


def test_findings_cover_every_profile_of_the_records():
    table = records.findings(campaign() + campaign(m2=(0.30, 0.31, 0.32), profile="full"))
    assert [row["profile"] for row in table] == ["cpu"] * 8 + ["full"] * 8
    assert by_claim(table, "full")["borders beat boundaries (M2 vs M1)"]["verdict"] == "contradicted"
    assert by_claim(table, "cpu")["borders beat boundaries (M2 vs M1)"]["verdict"] == "supported"
    markdown = records.findings_table(table)
    assert "| claim | the paper | cpu profile | full profile |" in markdown and markdown.count("\n") == 9


def test_recommendations_give_each_of_the_paper_s_eleven_a_status():
    rows = records.recommendations(campaign())
    assert [r["number"] for r in rows] == list(range(1, 12)) and all(r["status"] in records.STATUSES for r in rows)
    status = {r["number"]: r["status"] for r in rows}
    assert status[3] == "shown" and status[4] == "shown" and status[6] == "shown"
    assert status[2] == status[8] == status[10] == "not tested here"
    assert "ISBI Cell Tracking Challenge" in rows[7]["evidence"]
    assert rows[2]["paper"] == "Use borders instead of boundaries for instance segmentation."
    # Boundaries ahead of borders in one profile, tied in none: contradicted.
    against = {r["number"]: r for r in records.recommendations(campaign(m2=(0.35, 0.36, 0.37)))}
    assert against[3]["status"] == "contradicted" and "M2 - M1 -0.050 [" in against[3]["evidence"]
    assert "| 3 | Use borders instead of boundaries" in records.recommendations_table(list(against.values()))


def test_stored_records_give_m1_against_m2_and_tta_per_training_in_both_profiles():
    stored = records.read_records()
    if not {"cpu", "full"} <= {r["profile"] for r in stored}:
        pytest.skip("the results folder does not hold both profiles")
    table = records.findings(stored)
    for profile in ("cpu", "full"):
        rows = by_claim(table, profile)
        for claim in ("borders beat boundaries (M2 vs M1)", "TTA improves every network"):
            assert rows[claim]["verdict"] in ("supported", "contradicted", "undecided"), (profile, claim)
            assert "[" in rows[claim]["ours"] and ("t over trainings" in rows[claim]["ours"] or "images only" in rows[claim]["ours"])


def test_tuned_records_are_not_used_for_findings_but_get_their_own_bars():
    rows = campaign() + [record("M3B1", 0.99, False, 0, tuned=True)]
    assert records.findings(rows) == records.findings(campaign())
    assert ("M3B1 tuned", False) in {(r["label"], r["tta"]) for r in records.summary(rows)}


def test_figure9_draws_bars_whiskers_and_the_classical_line():
    import matplotlib

    matplotlib.use("Agg")
    ax = records.figure9(campaign(), title="test")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:5] == ["B1", "B2", "B3", "B4", "B5"] and "classical" not in labels
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == pytest.approx(0.44) for line in ax.get_lines())
    assert len(ax.containers) >= 3  # error bars of the multi-seed pipelines


def test_write_and_read_records_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_RESULTS", str(tmp_path))
    for r in campaign()[:4]:
        records.write_record(r)
    assert config.results_dir() == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu_M3B1.json", "cpu_M3B1_seed1.json", "cpu_M3B1_tta.json", "cpu_M3B1_tta_seed1.json"]
    assert [r["seed"] for r in records.read_records(profile="cpu")] == [0, 1, 0, 1]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json: not a valid results record"):
        records.read_records()


def test_stored_records_hold_no_machine_paths():
    for path in sorted(config.results_dir().rglob("*.json")):
        text = path.read_text()
        for marker in ("/work/", "/home/", "/root/", "/tmp/", "C:\\\\"):
            assert marker not in text, f"{path}: contains a machine path ({marker})"


def test_robustness_compares_before_and_after_on_the_images_both_scored(tmp_path):
    def run(commit, scores):
        rows = {name: [{"id": i, "score": s} for i, s in by_id.items()] for name, by_id in scores.items()}
        summary = {name: {"n": len(v), "mean": float(np.mean(list(v.values()))), "drop": 0.5, "max_time_ratio": 1.5}
                   for name, v in scores.items()}
        return {"commit": commit, "date": "2026-12-07", "n_images": len(scores["native"]), "hardware": {"cpu": "x"},
                "perturbations": {"dim": {"why": "darker"}, "jpeg": {"why": "web"}}, "rows": rows, "summary": summary}

    before = run("a", {"native": {"i1": 0.6, "i2": 0.4}, "dim": {"i1": 0.1, "i2": 0.3}})
    after = run("b", {"native": {"i1": 0.6, "i2": 0.4, "i3": 0.9}, "dim": {"i1": 0.5, "i2": 0.4, "i3": 0.0},
                      "jpeg": {"i1": 0.6, "i2": 0.4, "i3": 0.9}})
    (tmp_path / "robustness_before.json").write_text(json.dumps(before))
    (tmp_path / "robustness.json").write_text(json.dumps(after))
    found = records.robustness(tmp_path)
    assert list(found["perturbations"]) == ["dim"]  # jpeg: not in the earlier run
    dim = found["perturbations"]["dim"]
    assert dim["n"] == 2 and dim["before"] == pytest.approx(0.2) and dim["after"] == pytest.approx(0.45)
    assert dim["native_after"] == pytest.approx(0.5) and dim["drop_after"] == pytest.approx(0.05)
    assert dim["n_after"] == 3 and found["before"]["commit"] == "a" and found["after"]["n_images"] == 3
    assert found["stages"] == ["before", "after"]
    assert dim["max_time_ratio_after"] == dim["max_time_ratio_per_pixel_after"] == 1.5  # no pixel counts: the ratio
    after["summary"]["dim"]["max_time_ratio_per_pixel"] = 1.1
    (tmp_path / "robustness.json").write_text(json.dumps(after))
    assert records.robustness(tmp_path)["perturbations"]["dim"]["max_time_ratio_per_pixel_after"] == 1.1
    assert dim["max_time_ratio_own_size_after"] is None  # a run without rows at the images' own size
    # the rules with the networks of their time, kept when the networks changed: a third stage
    rules = run("c", {"native": {"i1": 0.6, "i2": 0.4}, "dim": {"i1": 0.3, "i2": 0.3}})
    (tmp_path / "robustness_rules.json").write_text(json.dumps(rules))
    found = records.robustness(tmp_path)
    assert found["stages"] == ["before", "rules", "after"] and found["rules"]["commit"] == "c"
    assert found["perturbations"]["dim"]["rules"] == pytest.approx(0.3) and found["perturbations"]["dim"]["n"] == 2
    # networks trained for robustness and not shipped: a fourth stage, after the shipped one
    robust = run("d", {"native": {"i1": 0.5, "i2": 0.4, "i3": 0.8}, "dim": {"i1": 0.5, "i2": 0.2, "i3": 0.7}})
    (tmp_path / "robustness_robust_networks.json").write_text(json.dumps(robust))
    found = records.robustness(tmp_path)
    assert found["stages"] == ["before", "rules", "after", "robust"] and found["robust"]["commit"] == "d"
    dim = found["perturbations"]["dim"]
    assert dim["robust"] == pytest.approx(0.35) and dim["native_robust"] == pytest.approx(0.45) and dim["n"] == 2
    # ... and on every image each stage scored
    assert dim["robust_all"] == pytest.approx(0.4667, abs=1e-4) and dim["before_all"] == pytest.approx(0.2)
    assert found["robust"]["native_all"] == pytest.approx(0.5667, abs=1e-4) and found["after"]["native_all"] == pytest.approx(0.6333, abs=1e-4)
