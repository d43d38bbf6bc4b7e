"""Configs of the Mechanistic Identifier: presets, strict TOML, validation."""

import pytest

from pipeline.model.config import Config, load_config, preset


def test_paper_preset_matches_the_published_setup():
    paper = preset("paper")
    assert paper.window.context == 208
    assert (paper.model.encoder_width, paper.model.encoder_depth) == (1024, 5)
    assert paper.model.latent_dim == 20
    assert paper.model.order == 2
    assert paper.model.init_steps == 10
    assert paper.model.dtype == "float64"


def test_configs_are_frozen():
    with pytest.raises(Exception, match="frozen"):
        preset("default").train.lr = 1.0


def test_toml_overrides_a_preset(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "paper"\n[train]\nlr = 3e-4\n[model]\norder = 3\n')
    config = load_config(path)
    assert config.train.lr == 3e-4
    assert config.model.order == 3
    assert config.model.encoder_width == 1024  # from the preset


def test_unknown_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"learning_rate.*\[train\]"):
        load_config(path)


def test_unknown_section_is_an_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optimizer]\nlr = 0.1\n")
    with pytest.raises(ValueError, match="optimizer"):
        load_config(path)


def test_invalid_value_names_the_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model]\norder = 0\n")
    with pytest.raises(ValueError, match="order"):
        load_config(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="default"):
        preset("huge")


def test_initial_steps_must_fit_in_the_context():
    with pytest.raises(ValueError, match="init_steps"):
        Config.model_validate({"model": {"init_steps": 30}, "window": {"context": 24,
                                                                       "horizon": 4}})


def test_mode_dynamics_need_the_context_modes():
    with pytest.raises(ValueError, match="mode_leads needs model.context_modes"):
        Config.model_validate({"model": {"context_modes": 0}})
    assert Config.model_validate({"model": {"context_modes": 0, "mode_leads": 0}})
    with pytest.raises(ValueError, match="mode_harmonics"):
        Config.model_validate({"model": {"mode_harmonics": 7}})


def test_malformed_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize("key", ["network_threads", "solver_threads"])
def test_thread_counts_below_one_name_the_field_and_none_is_accepted(tmp_path, key):
    path = tmp_path / "bad.toml"
    path.write_text(f"[train]\n{key} = 0\n")
    with pytest.raises(ValueError, match=rf"{key}[\s\S]*greater than or equal to 1"):
        load_config(path)
    assert getattr(Config(train={key: None}).train, key) is None
