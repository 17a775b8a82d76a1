import numpy as np
import pytest
from click.testing import CliRunner

from alplug.cli import cli
from alplug.errors import UsageError
from alplug.strategies import StrategyError, StrategyLoadError, available_strategies, get_strategy, resolve_query
from alplug.strategies.options import parse_option_values

from conftest import QUICK
from fake_plugins import BAD_PLUGIN_ENTRY_POINTS, BAD_PLUGIN_MODULES, install_fake_distribution


class FixedProba:
    def predict_proba(self, X):
        X = np.asarray(X, dtype=float).reshape(len(X), -1)
        p = 1 / (1 + np.exp(-X[:, 0]))
        return np.stack([p, 1 - p], axis=1)


POOL = np.linspace(-3, 3, 13).reshape(-1, 1)


@pytest.fixture
def bad_plugins(tmp_path, monkeypatch):
    site = install_fake_distribution(tmp_path / "site", "alplug-fake-bad", BAD_PLUGIN_ENTRY_POINTS, BAD_PLUGIN_MODULES)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("ALPLUG_DISABLE_PLUGINS", raising=False)
    return site


def test_broken_plugin_is_listed_as_broken_and_the_rest_still_works(bad_plugins):
    result = CliRunner().invoke(cli, ["strategies"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "BROKEN" in lines["broken-import"] and "alplug-fake-bad 0.3.0" in lines["broken-import"]
    assert "libfoo is missing" in lines["broken-import"]
    assert "BROKEN" in lines["bad-signature"] and "keyword-only random_state" in lines["bad-signature"]
    assert "BROKEN" not in lines["margin"] and "BROKEN" not in lines["dupes"]


def test_broken_plugin_does_not_stop_a_run_with_another_strategy(bad_plugins, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--query", "margin", "--out", str(tmp_path / "run"), *QUICK,
                                      "--rounds", "1"])
    assert result.exit_code == 0, result.output


def test_asking_for_the_broken_plugin_names_its_distribution(bad_plugins, tmp_path):
    with pytest.raises(StrategyLoadError, match="alplug-fake-bad 0.3.0.*libfoo is missing"):
        get_strategy("broken-import")
    result = CliRunner().invoke(cli, ["run", "--query", "broken-import", "--out", str(tmp_path / "run"), *QUICK])
    assert result.exit_code != 0 and "alplug: error:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name,message", [
    ("dupes", "duplicate indices"),
    ("bare-indices", "must return a tuple"),
    ("out-of-range", "outside the pool"),
    ("too-few", "returned 1 indices for n_instances=2"),
])
def test_malformed_results_are_errors_naming_strategy_and_distribution(bad_plugins, name, message):
    with pytest.raises(StrategyError, match=f"'{name}' \\(alplug-fake-bad 0.3.0\\).*{message}|{message}.*"):
        get_strategy(name)(FixedProba(), POOL, n_instances=2)
    with pytest.raises(StrategyError) as info:
        get_strategy(name)(FixedProba(), POOL, n_instances=2)
    assert "alplug-fake-bad 0.3.0" in str(info.value)


def test_disable_plugins_hides_third_party_strategies(bad_plugins, monkeypatch):
    assert "dupes" in available_strategies()
    monkeypatch.setenv("ALPLUG_DISABLE_PLUGINS", "1")
    names = available_strategies()
    assert "dupes" not in names and "bald" not in names and "margin" in names
    monkeypatch.setenv("ALPLUG_DISABLE_PLUGINS", "alplug-fake-bad")
    names = available_strategies()
    assert "dupes" not in names and "bald" in names


def test_a_known_optional_strategy_that_is_missing_names_its_extra(monkeypatch):
    monkeypatch.setenv("ALPLUG_DISABLE_PLUGINS", "alplug-bald")
    with pytest.raises(UsageError, match=r'pip install "alplug\[bald\]"'):
        get_strategy("bald")


@pytest.mark.parametrize("n", [0, 14, 1.5])
def test_checked_strategies_refuse_impossible_instance_counts(n):
    with pytest.raises(UsageError, match="n_instances"):
        get_strategy("margin")(FixedProba(), POOL, n_instances=n)


def test_pool_of_the_wrong_shape_is_refused_before_torch_sees_it():
    from alplug.testing import reference_learner

    learner, pool = reference_learner()
    with pytest.raises(UsageError, match=r"this model takes images shaped \(N, 1, H, W\)"):
        get_strategy("margin")(learner, pool[:, 0], n_instances=2)
    with pytest.raises(UsageError, match=r"'entropy' \(alplug 0.1.0\): X_pool must be an array"):
        get_strategy("entropy")(learner, 42, n_instances=1)


def test_option_parsing_and_validation():
    assert parse_option_values(["T=30", "prefilter=4", "flag=true", "name=foo", "ratio=0.5"]) == {
        "T": 30, "prefilter": 4, "flag": True, "name": "foo", "ratio": 0.5}
    with pytest.raises(UsageError, match="key=value"):
        parse_option_values(["T30"])
    with pytest.raises(UsageError, match="has no option 'tau'; its options: T=20"):
        resolve_query("bald", {"tau": 3})
    with pytest.raises(UsageError, match="must be a number of type int"):
        resolve_query("bald", {"T": "many"})
    with pytest.raises(UsageError, match="has no option"):
        resolve_query("margin", {"T": 3})


def test_options_reach_the_strategy():
    from alplug.testing import reference_learner

    learner, pool = reference_learner()
    a = resolve_query("kmeans-boundary", {"n_clusters": 2})(learner, pool, 5, random_state=0)
    b = resolve_query("kmeans-boundary", {"n_clusters": 7})(learner, pool, 5, random_state=0)
    assert a[0].tolist() != b[0].tolist()


def test_combination_prefilters_with_the_first_and_picks_with_the_second():
    from alplug.strategies.uncertainty import entropy

    from alplug.testing import reference_learner

    learner, pool = reference_learner()
    combined = resolve_query("entropy+model-outlier", {"prefilter": 3})
    idx, scores = combined(learner, pool, 4, random_state=0)
    candidates, _ = entropy(learner, pool, 12)
    assert set(idx.tolist()) <= set(candidates.tolist()) and len(set(idx.tolist())) == 4
    emb_means = learner.estimator.embed(pool[candidates]).mean(axis=1)
    assert sorted(idx.tolist()) == sorted(candidates[np.argsort(emb_means, kind="stable")[:4]].tolist())
    only_second = resolve_query("model-outlier")(learner, pool, 4)[0]
    assert sorted(only_second.tolist()) != sorted(idx.tolist()) or set(only_second) <= set(candidates)


def test_combination_options_are_routed_by_prefix():
    f = resolve_query("entropy+kmeans-boundary", {"prefilter": 2, "kmeans-boundary.n_clusters": 3})
    assert callable(f)
    with pytest.raises(UsageError, match="has no option 'T'"):
        resolve_query("entropy+kmeans-boundary", {"entropy.T": 3})
    with pytest.raises(UsageError, match="prefilter=M or"):
        resolve_query("entropy+kmeans-boundary", {"n_clusters": 3})
    with pytest.raises(UsageError, match="first\\+second"):
        resolve_query("entropy+margin+ratio")


def test_prefixed_options_must_name_the_strategy_and_studies_route_them():
    from alplug.strategies.options import options_for

    with pytest.raises(UsageError, match="names another strategy"):
        resolve_query("margin", {"bald.T": 3})
    assert callable(resolve_query("bald", {"bald.T": 3}))
    options = {"bald.T": 30, "prefilter": 2, "kmeans-boundary.n_clusters": 4}
    assert options_for("random", options) == {"prefilter": 2}
    assert options_for("bald", options) == {"bald.T": 30, "prefilter": 2}
    assert options_for("bald+kmeans-boundary", options) == options
