"""nucleitut.pretrained: storing and loading reference networks (save_reference, load_reference)."""

import json

import numpy as np
import pytest

import nucleitut
from nucleitut import config, images, predict, pretrained, training, unet

from test_pipeline import discs_image, reference  # noqa: F401  (reference: a fixture)


def test_reference_round_trip_predicts_like_the_original_networks(reference):  # noqa: F811
    folder, originals, settings = reference
    info = json.loads((folder / "reference.json").read_text())
    assert info["pipeline"] == "M6B4" and info["networks"]["M6"]["dtype"] == "float16"
    assert info["postprocess"] == settings and info["nucleus_size"]["median_diameter"] == 15.0
    assert info["profile"] == "cpu" and info["trained"] == {"where": "test"}
    assert json.loads((folder / "B4" / "config.json").read_text())["filters"] == 4
    loaded, loaded_info = pretrained.load_reference(folder)
    assert loaded_info == info and set(loaded) == {"M6", "B4"}
    image, _ = discs_image(15, shape=(96, 128))
    rgb = images.to_rgb_uint8(image)
    for name in ("M6", "B4"):
        assert isinstance(loaded[name], training.Network) and loaded[name].config == originals[name].config
        assert loaded[name].name == name and loaded[name].blocks == 3
        for original, stored in zip(originals[name].model.weights, loaded[name].model.weights):
            assert np.array_equal(stored.numpy(), original.numpy().astype(np.float16).astype(np.float32))
        a = predict.predict_probabilities(originals[name].model, rgb)
        b = predict.predict_probabilities(loaded[name].model, rgb)
        assert np.abs(a - b).max() < 1e-2


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_weights_that_do_not_fit_float16_are_refused(tmp_path):
    cfg = config.training_config("B4", "cpu", blocks=3, filters=2)
    network = training.Network(unet.build_unet(blocks=3, filters=2, out_channels=1), cfg)
    kernel = next(v for v in network.model.weights if "kernel" in v.path)
    kernel.assign(np.full(kernel.shape, 1e6, np.float32))
    with pytest.raises(ValueError, match=f"B4: weight {kernel.path} does not fit float16"):
        pretrained.save_reference(tmp_path, {"B4": network}, "B4", {}, {"median_diameter": 15.0})
    assert not (tmp_path / "reference.json").exists()


def test_weights_of_another_network_size_are_refused(reference, tmp_path):  # noqa: F811
    folder, _, _ = reference
    for path in folder.rglob("*"):
        if path.is_file():
            target = tmp_path / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    cfg = json.loads((tmp_path / "M6" / "config.json").read_text())
    (tmp_path / "M6" / "config.json").write_text(json.dumps({**cfg, "blocks": 4}))
    with pytest.raises(ValueError, match="weights do not match a U-Net of 4 blocks, F=4"):
        pretrained.load_reference(tmp_path)


def test_a_folder_without_reference_json_names_the_command_that_builds_it(tmp_path):
    with pytest.raises(pretrained.ReferenceMissing, match="no reference networks.*tools/make_reference.py"):
        pretrained.load_reference(tmp_path)


def test_the_shipped_reference_networks_are_small_and_load_without_training():
    folder = pretrained.REFERENCE_DIR
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 10e6, f"reference networks take {size / 1e6:.1f} MB (limit 10 MB)"
    networks, info = pretrained.load_reference()
    assert set(networks) == set(config.get_pipeline(info["pipeline"]).networks)
    assert all(isinstance(n, training.Network) and n.name == name for name, n in networks.items())
    assert info["postprocess_chosen_on"].startswith("validation") and info["nucleus_size"]["median_diameter"] > 0
    assert "/work/" not in json.dumps(info) and "/tmp/" not in json.dumps(info)
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:20, 10:20] = 200
    assert nucleitut.segment(image, tta=False, size=False).shape == (40, 40)


def test_make_reference_refuses_a_results_record_with_no_record(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("make_reference", Path(__file__).resolve().parents[1] / "tools" / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for extra in (["--record", "r.json"], ["--settings-from-record"]):
        with pytest.raises(SystemExit) as stopped:
            module.main(["--models", "m", "--data", "d", "--no-record", *extra])
        assert stopped.value.code == 2 and "--no-record excludes" in capsys.readouterr().err


def test_the_robust_networks_in_the_repository_load_and_say_how_they_were_trained():
    folder = pretrained.ROBUST_DIR
    assert (folder / "reference.json").is_file(), f"{folder}: the robust networks (tools/make_reference.py --no-record)"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 10e6, f"robust networks take {size / 1e6:.1f} MB (limit 10 MB)"
    networks, info = pretrained.load_reference(folder)
    assert set(networks) == {"M3", "B1"} and info["pipeline"] == "M3B1"
    assert all(run["augmentation"] == "robust" and run["epochs"] == 35 for run in info["trained"].values())
    assert info["results"] is None and info["postprocess_chosen_on"].startswith("validation")
    assert "/work/" not in json.dumps(info) and "/tmp/" not in json.dumps(info)
