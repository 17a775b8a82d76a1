import pytest

from alplug.config import RunConfig, read_settings
from alplug.errors import UsageError


def test_toml_round_trip(tmp_path):
    config = RunConfig(query="entropy", dropout=0.3, budget=None, augment=True)
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert RunConfig.from_toml(tmp_path / "c.toml") == config


def test_read_settings_returns_only_what_the_file_sets(tmp_path):
    (tmp_path / "c.toml").write_text('per-round = 7\nmodel = "squeezenet1_1"\n')
    assert read_settings(tmp_path / "c.toml") == {"per_round": 7, "model": "squeezenet1_1"}


def test_unknown_settings_suggest_the_right_name(tmp_path):
    (tmp_path / "c.toml").write_text("per_rounds = 7\n")
    with pytest.raises(UsageError, match="did you mean 'per_round'"):
        read_settings(tmp_path / "c.toml")


def test_invalid_toml_and_missing_file(tmp_path):
    (tmp_path / "c.toml").write_text("per_round = \n")
    with pytest.raises(UsageError, match="not valid TOML"):
        read_settings(tmp_path / "c.toml")
    with pytest.raises(UsageError, match="does not exist"):
        read_settings(tmp_path / "nope.toml")


def test_validate_reports_every_problem_at_once():
    with pytest.raises(UsageError) as info:
        RunConfig(per_round=0, epochs=0, lr=-1).validate()
    message = str(info.value)
    assert "--per-round = 0" in message and "--epochs = 0" in message and "--lr = -1" in message


def test_differences_are_named():
    assert RunConfig(seed=1).differences(RunConfig(seed=2)) == ["seed: 1 != 2"]
    assert RunConfig(seed=1).differences(RunConfig(seed=2), only={"query"}) == []
