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


# ---- a setting declared once ------------------------------------------------------------------------------------

def test_a_setting_declared_once_is_an_option_a_checked_toml_key_and_reaches_the_optimizer(tmp_path):
    """One declaration, no other edit: the option, its help, the TOML type check, the range in validate(), the
    project's settings and the route to the estimator (a skorch parameter, so torch's optimizer receives it)."""
    import dataclasses

    import click
    from click.testing import CliRunner

    from alplug.cli_options import explicit_settings, run_options
    from alplug.config import project_settings, setting
    from alplug.round_steps import estimator_for

    @dataclasses.dataclass
    class WithEps(RunConfig):
        adam_eps: float = setting(1e-8, valid=((lambda v: v > 0), "must be > 0"), to="estimator",
                                  key="optimizer__eps", project=True, help="Adam's epsilon.")

    seen = {}

    @click.command()
    @run_options(config_class=WithEps)
    @click.pass_context
    def command(ctx, **params):
        seen.update(explicit_settings(ctx, params, WithEps), all=params)

    result = CliRunner().invoke(command, ["--adam-eps", "1e-6", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert seen["adam_eps"] == 1e-6 and seen["lr"] == 0.01 and seen["all"]["batch_size"] == 32
    assert "--adam-eps FLOAT" in CliRunner().invoke(command, ["--help"]).output
    assert "adam_eps" in project_settings(WithEps) and "adam_eps" not in project_settings()

    with pytest.raises(UsageError, match="--adam-eps = 0.0, must be > 0"):
        WithEps(adam_eps=0.0).validate()
    with pytest.raises(UsageError, match="adam_eps = 'small', must be a number"):
        WithEps.from_dict({"adam-eps": "small"})
    (tmp_path / "c.toml").write_text(WithEps(adam_eps=1e-5).to_toml())
    config = WithEps.from_toml(tmp_path / "c.toml").validate()
    assert config.adam_eps == 1e-5

    net = estimator_for(config, in_channels=1, num_classes=3, images=None).initialize()
    assert net.optimizer_.defaults["eps"] == 1e-5 and net.optimizer_.defaults["lr"] == config.lr
