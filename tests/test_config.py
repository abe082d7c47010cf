"""Tests of nucleitut.config: the paper's Table 3, the profiles, the pipelines, folders and devices."""

import dataclasses

import pytest

from nucleitut import config

#: Table 3 of Scherr et al. (2018), as printed in ../shared/paper/scherr2018.md (section 4.5):
#: network: (blocks, F, classes, target, lr, starred, augmentation set, erosion/dilation).
PAPER_TABLE3 = {
    "B1": (4, 64, 1, "binary", 1e-4, False, "none", False),
    "B2": (4, 64, 1, "binary", 1e-4, False, "a", False),
    "B3": (4, 64, 1, "binary", 1e-4, False, "b", False),
    "B4": (4, 64, 1, "binary", 2e-4, True, "b", False),
    "B5": (5, 32, 1, "binary", 2e-4, True, "b", False),
    "M1": (4, 64, 3, "boundary", 1e-4, False, "none", False),
    "M2": (4, 64, 3, "border", 1e-4, False, "none", False),
    "M3": (4, 64, 3, "marker", 1e-4, False, "none", True),
    "M4": (4, 64, 3, "marker", 1e-4, False, "a", True),
    "M5": (4, 64, 3, "marker", 1e-4, False, "b", True),
    "M6": (4, 64, 3, "marker", 2e-4, True, "b", True),
    "M7": (5, 32, 3, "marker", 2e-4, True, "b", True),
}


def test_every_table3_row_matches_the_paper():
    assert list(config.TABLE3) == list(PAPER_TABLE3)
    for name, (blocks, filters, classes, target, lr, starred, augmentation, eroded) in PAPER_TABLE3.items():
        spec = config.TABLE3[name]
        got = (spec.blocks, spec.filters, spec.out_channels, spec.target, spec.learning_rate, spec.plateau,
               spec.augmentation, spec.eroded)
        assert got == (blocks, filters, classes, target, lr, starred, augmentation, eroded), name
        full = config.training_config(name, "full")
        assert (full.blocks, full.filters, full.learning_rate, full.plateau) == (blocks, filters, lr, starred), name
        # Erosion/dilation only where Table 3 has them; M2's border is not dilated.
        assert (spec.erosion > 0 and spec.border_dilation > 0) == eroded, name
    assert config.TABLE3["M2"].target_params == {"dilation": 0}


def test_profiles_keep_the_ratio_of_starred_and_plain_learning_rates():
    for profile in config.PROFILES:
        plain, starred = config.training_config("M5", profile), config.training_config("M6", profile)
        assert starred.learning_rate == pytest.approx(2 * plain.learning_rate), profile
        assert plain.learning_rate == pytest.approx(1e-4 * config.get_profile(profile).lr_factor), profile


def test_table3_and_profiles_are_data():
    full = config.training_config("B5", "full")
    assert (full.beta_1, full.beta_2, full.amsgrad) == (0.9, 0.99, True)
    assert (full.batch_size, full.early_stopping_patience, full.plateau_patience, full.plateau_factor) == (8, 10, 5, 0.25)
    quick = config.training_config("B1", "quick")
    assert (quick.blocks, quick.filters, quick.crop_size, quick.learning_rate) == (3, 8, 128, 1e-3)
    cpu = config.training_config("M3", "cpu")
    assert (cpu.blocks, cpu.filters, cpu.max_epochs, cpu.time_budget_s, config.get_profile("cpu").data) == (4, 16, 8, None, "full")
    assert (cpu.lr_schedule, full.lr_schedule, quick.lr_schedule) == ("cosine", "paper", "paper")
    assert config.training_config("M7", "full").plateau and not config.training_config("M3", "full").plateau
    with pytest.raises(ValueError, match="unknown network 'X9'"):
        config.training_config("X9")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        config.get_profile("fast")


def test_profile_is_chosen_by_environment_variable(monkeypatch):
    monkeypatch.setenv("NUCLEITUT_PROFILE", "full")
    assert config.training_config("B1").profile == "full"
    assert config.training_config("B1", "quick").profile == "quick"


def test_training_config_overrides_single_settings_and_its_dict_round_trips(monkeypatch):
    monkeypatch.delenv("NUCLEITUT_TIME_BUDGET", raising=False)
    cfg = config.training_config("m6", "cpu", seed=3, filters=4, crop_size=64)
    assert (cfg.network, cfg.profile, cfg.seed, cfg.filters, cfg.crop_size) == ("M6", "cpu", 3, 4, 64)
    assert cfg.blocks == config.training_config("M6", "cpu").blocks  # the rest as the profile says
    assert config.TrainingConfig.from_dict(cfg.to_dict()) == cfg
    # configurations saved with settings this version no longer has (e.g. size_target) still load
    assert config.TrainingConfig.from_dict({**cfg.to_dict(), "size_target": None}) == cfg
    assert "size_target" not in cfg.to_dict()
    with pytest.raises(TypeError):
        config.training_config("M6", "cpu", colour="red")
    monkeypatch.setenv("NUCLEITUT_TIME_BUDGET", "90")
    assert config.training_config("M6", "cpu").time_budget_s == 90.0
    monkeypatch.setenv("NUCLEITUT_TIME_BUDGET", "0")
    assert config.training_config("M6", "cpu").time_budget_s is None


def test_get_pipeline_names_one_network_or_a_pair():
    pair = config.get_pipeline("m3b1")
    assert isinstance(pair, config.PipelineSpec) and pair == config.PipelineSpec("M3B1", ("M3", "B1"), "two_network")
    assert config.get_pipeline("M5B1").networks == ("M5", "B1")  # not a pair of Figure 9, allowed for experiments
    assert [config.get_pipeline(n).method for n in ("B3", "M1", "M2", "M7")] == ["threshold", "watershed", "watershed", "watershed"]
    assert all(config.get_pipeline(name).networks == networks for name, networks in config.PAIRS.items())
    with pytest.raises(ValueError, match="unknown network 'M9'"):
        config.get_pipeline("M9")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.name = "B1"


def test_every_method_has_default_settings_within_its_grid():
    for method, defaults in config.POSTPROCESS_DEFAULTS.items():
        grid = config.POSTPROCESS_GRID[method]
        assert set(grid) == set(defaults), method
        assert all(defaults[name] in values for name, values in grid.items()), method


def test_model_dir_lies_under_the_given_root_or_the_models_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_MODELS", str(tmp_path / "env"))
    assert config.models_dir() == tmp_path / "env"
    assert config.model_dir("m3", "cpu") == tmp_path / "env" / "cpu" / "M3"
    assert config.model_dir("B1", "quick", seed=2) == tmp_path / "env" / "quick" / "seed2" / "B1"
    assert config.model_dir("B1", "quick", seed=2, root=tmp_path / "mine") == tmp_path / "mine" / "quick" / "seed2" / "B1"
    assert config.model_dir("M6", "full", root=str(tmp_path / "mine")) == tmp_path / "mine" / "full" / "M6"
    monkeypatch.setenv("NUCLEITUT_PROFILE", "cpu")
    assert config.model_dir("M6", root=tmp_path) == tmp_path / "cpu" / "M6"  # the profile of the environment
    monkeypatch.delenv("NUCLEITUT_MODELS")
    monkeypatch.setenv("NUCLEITUT_CACHE", str(tmp_path / "cache"))
    assert config.models_dir() == tmp_path / "cache" / "models"
    with pytest.raises(ValueError, match="unknown network"):
        config.model_dir("X1", "cpu", root=tmp_path)


def test_results_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEITUT_RESULTS", str(tmp_path / "records"))
    assert config.results_dir() == tmp_path / "records"
    monkeypatch.delenv("NUCLEITUT_RESULTS")
    assert config.results_dir().name == "results"


def test_available_devices_is_a_list_of_names():
    import keras

    devices = config.available_devices()
    assert isinstance(devices, list) and all(isinstance(d, str) and d for d in devices)
    if keras.backend.backend() == "tensorflow":  # the backend the tests run on
        import tensorflow as tf

        assert len(devices) == len(tf.config.list_physical_devices("GPU"))  # a plain CPU: none
