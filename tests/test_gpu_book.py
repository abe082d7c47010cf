"""The GPU edition of the book (issue 32): the ``gpu`` profile and tools/gpu_book.py.

The run itself needs a GPU machine (tools/gpu_book.sh); these tests check what can be
checked anywhere: the profile is Table 3's, the pre-trained networks are the ones the
chapters load, and the collector turns a run's files into summary.json, junit.xml, Figure 9
and the archives that come back.
"""

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest

from nucleitut import config

ROOT = Path(__file__).resolve().parents[1]


def _gpu_book():
    spec = importlib.util.spec_from_file_location("gpu_book", ROOT / "tools" / "gpu_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_book = _gpu_book()


def test_gpu_profile_trains_table3_networks_as_the_paper_within_a_budget():
    profile = config.get_profile("gpu")
    assert profile.data == "full" and profile.lr_schedule == "paper"
    assert 0 < profile.time_budget_s == config.GPU_TIME_BUDGET_S <= 240
    for name, spec in config.TABLE3.items():
        cfg = config.training_config(name, "gpu")
        assert (cfg.blocks, cfg.filters) == (spec.blocks, spec.filters), name
        assert (cfg.crop_size, cfg.batch_size, cfg.mixed_precision) == (256, 8, True), name
        assert cfg.learning_rate == spec.learning_rate and cfg.plateau == spec.plateau, name
        assert (cfg.plateau_patience, cfg.plateau_factor, cfg.early_stopping_patience) == (5, 0.25, 10), name
        assert cfg.time_budget_s == profile.time_budget_s, name
    assert (config.TABLE3["B5"].blocks, config.TABLE3["B5"].filters) == (5, 32)
    assert str(int(profile.time_budget_s)) in profile.description, "the chapters' banner names the budget"


def test_the_pretrained_networks_are_the_ones_the_chapters_load():
    """A network a chapter loads but the run does not train first would be trained by the
    chapter itself, alone and after the others: minutes the 8 minutes do not have."""
    loaded = set()
    for chapter in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in nbformat.read(chapter, as_version=4).cells:
            if cell.cell_type == "code" and "trained_model(" in cell.source:
                for name in re.findall(r"""["']([BM][1-7](?:B[1-5])?)["']""", cell.source):
                    loaded |= set(config.get_pipeline(name).networks)
    assert loaded, "the chapters load trained networks"
    assert loaded <= set(gpu_book.NETWORKS), f"trained by the chapters themselves: {sorted(loaded - set(gpu_book.NETWORKS))}"


def test_steady_ms_per_crop_leaves_out_compilation_and_the_cut_epoch():
    assert gpu_book.steady_ms_per_crop([90.0, 4.0, 5.0, 6.0, 1.0], 1000) == (5.0, "median of epochs 2-4")
    assert gpu_book.steady_ms_per_crop([90.0, 3.0], 1000)[0] == 3.0
    assert gpu_book.steady_ms_per_crop([90.0], 1000) == (90.0, "epoch 1 only: compilation included")
    assert gpu_book.steady_ms_per_crop([], 1000)[0] is None


def test_executed_notebook_takes_the_outputs_of_the_cells_that_ran():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("1"),
                                               nbformat.v4.new_code_cell("print(2)")])
    out = nbformat.v4.new_output("stream", name="stdout", text="2\n")
    executed = gpu_book.executed_notebook(notebook, {1: [], 2: [out]})
    assert [c.get("execution_count") for c in executed.cells] == [None, 1, 2]
    assert executed.cells[2].outputs == [out] and notebook.cells[2].outputs == []
    nbformat.validate(executed)


def _fake_run(tmp_path):
    """The files of a run with two chapters (one failed cell) and one network."""
    work, models = tmp_path / "work", tmp_path / "models"
    for folder in ("junit", "executed", "records", "logs"):
        (work / folder).mkdir(parents=True)
    (work / "junit" / "01_data.xml").write_text(
        '<testsuites><testsuite tests="2" failures="0" errors="0" skipped="0">'
        '<testcase classname="book.01_data.ipynb" name="Cell 0" time="2.5"/>'
        '<testcase classname="book.01_data.ipynb" name="Cell 1" time="1.0"/></testsuite></testsuites>')
    (work / "junit" / "06_evaluation.xml").write_text(
        '<testsuites><testsuite tests="2" failures="1" errors="0" skipped="0">'
        '<testcase classname="book.06_evaluation.ipynb" name="Cell 0" time="4"/>'
        '<testcase classname="book.06_evaluation.ipynb" name="Cell 1" time="6"><failure message="x"/></testcase>'
        '</testsuite></testsuites>')
    png = base64.b64encode(b"\x89PNG fake").decode()
    chapter = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("ax = records.figure9(scored, title='gpu profile')", execution_count=1,
                                  outputs=[nbformat.v4.new_output("display_data", data={"image/png": png})]),
        nbformat.v4.new_code_cell("x", execution_count=2, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="Training M2 (gpu profile): 4 blocks\n")]),
    ])
    nbformat.write(chapter, str(work / "executed" / "06_evaluation.ipynb"))
    (work / "executed" / "06_evaluation.json").write_text('{"seconds": 11.0}')
    (work / "records" / "gpu_B1.json").write_text('{"pipeline": "B1"}')
    (work / "nvidia_smi_gpu.txt").write_text("NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04\n")
    (work / "bench.json").write_text(json.dumps({"devices": ["cuda:0 (NVIDIA H100 80GB HBM3)"],
                                                 "networks": {"B1": {"ms_per_crop": 1.9}}}))
    (work / "book.json").write_text(json.dumps({"profile": "gpu", "networks": ["B1"], "chapters_during_training": ["01_data"], "jobs": {
        "train B1": {"seconds": 200.0, "exit_code": 0},
        "01_data": {"seconds": 30.5, "exit_code": 0}, "06_evaluation": {"seconds": 140.0, "exit_code": 1}}}))
    net = models / "gpu" / "B1"
    net.mkdir(parents=True)
    (net / "config.json").write_text(json.dumps(config.training_config("B1", "gpu").to_dict()))
    (net / "timing.json").write_text(json.dumps({"epochs": 4, "seconds_this_run": 180.2, "stopped_by_time_budget": True,
                                                 "training_crops": 1000, "ms_per_crop_including_validation": 30.0,
                                                 "devices": ["cuda:0 (NVIDIA H100 80GB HBM3)"]}))
    (net / "history.csv").write_text("epoch,loss,val_loss,epoch_seconds\n0,1,0.9,90\n1,0.8,0.7,4\n2,0.7,0.6,6\n3,0.6,0.65,2\n")
    return work, models


def test_summary_of_a_run(tmp_path, monkeypatch):
    work, models = _fake_run(tmp_path)
    monkeypatch.setenv("NUCLEITUT_MODELS", str(models))
    monkeypatch.setenv("NUCLEITUT_PROFILE", "gpu")
    monkeypatch.setenv("GPU_BOOK_START", "0")  # the epoch: far more than the limit ago
    out = tmp_path / "out"
    assert gpu_book.main(["summary", str(work), str(out)]) == 1, "a failed chapter fails the run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "NVIDIA H100 80GB HBM3" and summary["devices"] == ["cuda:0 (NVIDIA H100 80GB HBM3)"]
    assert summary["versions"]["python"] == sys.version.split()[0]
    assert summary["profile"] == "gpu" and summary["time_budget_s"] == config.GPU_TIME_BUDGET_S
    assert summary["within_limit"] is False and summary["limit_seconds"] == 480
    assert summary["chapter_seconds"] == {"01_data": 30.5, "06_evaluation": 140.0}
    assert summary["chapter_cells_seconds"] == {"01_data": 3.5, "06_evaluation": 10.0}
    assert summary["nbval"]["tests"] == 4 and summary["nbval"]["passed"] == 3
    assert summary["nbval"]["failed_chapters"] == ["06_evaluation"]
    assert summary["ms_per_crop"] == {"B1": 5.0}  # epochs 2-3 of 4: (4 + 6) / 2 s over 1000 crops
    assert summary["networks"]["B1"]["blocks"] == 4 and summary["networks"]["B1"]["epochs"] == 4
    assert summary["benchmark_alone"] == {"B1": 1.9}
    assert summary["trained_in_chapters"] == ["M2 (06_evaluation)"]
    assert summary["records"] == ["gpu_B1.json"] and summary["figure9"] == "figure9.png"
    assert (out / "figure9.png").read_bytes() == b"\x89PNG fake"
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testsuite ") == 2 and 'tests="4"' in junit
    with tarfile.open(out / summary["archives"][0]) as tar:
        names = tar.getnames()
    assert {"chapters/06_evaluation.ipynb", "networks/B1/history.csv", "records/gpu_B1.json", "book.json",
            "sources/_toc.yml"} <= set(names)
    dest = tmp_path / "results" / "gpu_book_x"
    assert gpu_book.main(["fetch", str(out), str(dest)]) == 0
    assert (dest / "chapters" / "06_evaluation.ipynb").exists() and (dest / "summary.json").exists()


@pytest.mark.slow
def test_plugin_keeps_the_executed_chapter_and_its_records(tmp_path):
    """nbval runs a chapter; the plugin writes it with its outputs and the records it holds."""
    chapter = tmp_path / "01_tiny.ipynb"
    record = {"pipeline": "B1", "profile": "quick", "tta": False, "mean": {"kaggle_score": 0.5}, "per_image": []}
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nprint('hello from', os.getcwd())"),
        nbformat.v4.new_code_cell(f"scored = [{record!r}]\nstored = [{dict(record, profile='cpu')!r}]\nscored[0]['pipeline']"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), str(chapter))
    env = {**os.environ, "NUCLEITUT_PROFILE": "quick", "GPU_BOOK_EXECUTED": str(tmp_path / "executed"), "GPU_BOOK_RECORDS": str(tmp_path / "records"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tools"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", str(chapter), "-p", "gpu_book",
                             "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    executed = nbformat.read(tmp_path / "executed" / "01_tiny.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "hello from <work>\n", "no machine path in the chapter"
    assert executed.cells[1].outputs[0]["data"]["text/plain"] == "'B1'"
    assert [c.execution_count for c in executed.cells] == [1, 2]
    times = json.loads((tmp_path / "executed" / "01_tiny.json").read_text())
    assert (times["cells"], times["passed"], times["failed"]) == (2, 2, 0)
    assert json.loads((tmp_path / "records" / "quick_B1.json").read_text()) == record
    assert [p.name for p in (tmp_path / "records").iterdir()] == ["quick_B1.json"], "not the stored records of other profiles"
