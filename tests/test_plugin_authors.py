"""What a plugin author meets (issue 30): a model whose outputs do not fit is refused before anything is written,
a plugin that exits at import is BROKEN and harms nothing, two plugins never share a name silently, option
values are checked up front."""
import textwrap
from pathlib import Path

import pytest

from conftest import QUICK
from project_helpers import invoke, make_project


def install(site: Path, dist: str, group: str, entry_points: dict[str, str], module: str, source: str) -> Path:
    """A distribution as pip installs it: a dist-info with entry points, and its module, on ``site``."""
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


# A model plugin whose head gives num_classes + EXTRA logits (EXTRA from the environment, so one project can meet
# the model it was made with and a broken update of it), and one that works on the meta device only.
HEADS = """
    import os

    from torch import nn

    from alplug.models import ModelParts, ModelSpec


    def build(in_channels, num_classes, weights):
        extra = int(os.environ.get("FAKE_EXTRA_LOGITS", "0"))
        backbone = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU())
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes + extra))
        return ModelParts(backbone, head, 8)


    class MetaOnly(nn.Module):
        def forward(self, x):
            if x.device.type != "meta":
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x8 and 7x10)")
            return x


    def build_meta_only(in_channels, num_classes, weights):
        backbone = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), MetaOnly())
        return ModelParts(backbone, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)), 8)


    SPEC = ModelSpec("wrong-head", build, "a head with EXTRA logits too many", min_input_size=8)
    META_ONLY = ModelSpec("meta-only", build_meta_only, "fails on real data", min_input_size=8)
"""


@pytest.fixture
def model_plugins(tmp_path, monkeypatch):
    site = install(tmp_path / "site", "alplug-fake-models", "alplug.models",
                   {"wrong-head": "fake_heads:SPEC", "meta-only": "fake_heads:META_ONLY"}, "fake_heads", HEADS)
    monkeypatch.syspath_prepend(str(site))
    from alplug.models.registry import get_model_spec

    get_model_spec.cache_clear()
    yield
    get_model_spec.cache_clear()


def one_line(result, code, *words):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code and lines and lines[-1].startswith("alplug: error:"), result.output
    assert all(w in lines[-1] for w in words) and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("extra, shape", [(1, "(2, 11)"), (-1, "(2, 9)")])
def test_a_model_with_the_wrong_number_of_logits_is_refused_before_anything_is_written(tmp_path, model_plugins,
                                                                                      monkeypatch, extra, shape):
    monkeypatch.setenv("FAKE_EXTRA_LOGITS", str(extra))
    run = invoke("run", "--model", "wrong-head", "--out", tmp_path / "r", *QUICK)
    one_line(run, 1, "'wrong-head' (alplug-fake-models 0.3.0)", f"logits of shape {shape}", "need (2, 10)")
    study = invoke("compare", "--query", "random", "--seeds", "1", "--model", "wrong-head", "--out", tmp_path / "s",
                   *QUICK)
    one_line(study, 1, "alplug-fake-models 0.3.0", shape)
    assert not (tmp_path / "r").exists() and not (tmp_path / "s").exists()  # K+1 ran to chance accuracy, exit 0


def test_a_project_meets_a_model_that_no_longer_fits_before_it_trains(tmp_path, model_plugins, monkeypatch):
    import alplug.project.server as server

    monkeypatch.setenv("FAKE_EXTRA_LOGITS", "1")
    refused = invoke("project", "init", tmp_path / "bad", "--images", tmp_path, "--classes", "a,b",
                     "--model", "wrong-head")
    one_line(refused, 1, "logits of shape (2, 3)")
    assert not (tmp_path / "bad").exists()
    monkeypatch.setenv("FAKE_EXTRA_LOGITS", "0")
    project, _ = make_project(tmp_path, 8, "--model", "wrong-head")
    monkeypatch.setenv("FAKE_EXTRA_LOGITS", "1")  # the plugin was updated since
    monkeypatch.setattr(server, "serve", lambda *a, **kw: pytest.fail("the server started"))
    one_line(invoke("label", project), 1, "'wrong-head' (alplug-fake-models 0.3.0)", "(2, 4)")


def test_a_model_that_fails_in_a_training_step_is_named(tmp_path, model_plugins):
    result = invoke("run", "--model", "meta-only", "--out", tmp_path / "r", *QUICK)
    one_line(result, 1, "training model 'meta-only' (alplug-fake-models 0.3.0) failed: RuntimeError: mat1 and mat2")


# ---- plugins that exit at import --------------------------------------------------------------------------------

@pytest.mark.parametrize("raised", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_a_plugin_that_exits_at_import_is_broken_and_harms_nothing_else(tmp_path, monkeypatch, raised):
    site = install(tmp_path / "site", "alplug-exits", "alplug.query_strategies", {"quits": "fake_exits:quits"},
                   "fake_exits", f"raise {raised}\n")
    monkeypatch.syspath_prepend(str(site))
    listing = invoke("strategies")
    assert listing.exit_code == 0, listing.output  # was: no output at all, exit 3
    row = next(line for line in listing.output.splitlines() if line.startswith("quits"))
    assert "BROKEN" in row and "alplug-exits 0.3.0" in row and raised.split("(")[0] in row
    assert any(line.startswith("margin ") for line in listing.output.splitlines())
    one_line(invoke("run", "--query", "quits", "--out", tmp_path / "r", *QUICK), 1, "alplug-exits 0.3.0")
    assert not (tmp_path / "r").exists()


# ---- one name, two third-party distributions -------------------------------------------------------------------

MAXENT = """
    import numpy as np


    def maxent2(learner, X_pool, n_instances=1, *, random_state=None):
        \"\"\"Max entropy from {dist}.\"\"\"
        return np.arange(n_instances), np.zeros(n_instances)
"""


@pytest.fixture
def twins(tmp_path, monkeypatch):
    for dist, module in (("alplug-maxent-a", "fake_maxent_a"), ("alplug-maxent-b", "fake_maxent_b")):
        site = install(tmp_path / dist, dist, "alplug.query_strategies", {"maxent2": f"{module}:maxent2"}, module,
                       MAXENT.format(dist=dist))
        monkeypatch.syspath_prepend(str(site))


def test_a_name_two_plugins_register_is_used_by_neither_until_one_is_picked(tmp_path, twins):
    from alplug.strategies import get_strategy

    refused = invoke("run", "--query", "maxent2", "--out", tmp_path / "r", *QUICK)
    one_line(refused, 2, "alplug-maxent-a 0.3.0", "alplug-maxent-b 0.3.0", "alplug-maxent-a/maxent2",
             "alplug-maxent-b/maxent2")  # was: alplug-maxent-a's, with a warning
    assert not (tmp_path / "r").exists()
    assert get_strategy("alplug-maxent-b/maxent2").alplug_sources == {"maxent2": "alplug-maxent-b 0.3.0"}
    listing = invoke("strategies").output
    rows = [line for line in listing.splitlines() if "maxent2" in line and not line.startswith("CONFLICT")]
    assert [r.split()[0] for r in rows] == ["alplug-maxent-a/maxent2", "alplug-maxent-b/maxent2"]
    assert "choose one as alplug-maxent-a/maxent2 or alplug-maxent-b/maxent2" in listing
    with pytest.raises(Exception, match="does not register"):
        get_strategy("alplug-nobody/maxent2")


def test_hiding_one_of_the_two_gives_the_name_to_the_other(twins, monkeypatch):
    from alplug.strategies import get_strategy

    monkeypatch.setenv("ALPLUG_DISABLE_PLUGINS", "alplug-maxent-a")
    assert get_strategy("maxent2").alplug_sources == {"maxent2": "alplug-maxent-b 0.3.0"}


def test_hidden_plugins_are_listed_as_hidden_not_as_missing(monkeypatch):
    monkeypatch.setenv("ALPLUG_DISABLE_PLUGINS", "1")
    listing = invoke("strategies").output
    assert "hidden: bald" in listing and "ALPLUG_DISABLE_PLUGINS hides it" in listing
    assert "not installed: bald" not in listing  # alplug-bald is installed in the development environment


# ---- option values and modAL, before anything is written ----------------------------------------------------------

def test_a_bad_option_value_is_refused_before_round_0(tmp_path):
    pytest.importorskip("alplug_bald")
    result = invoke("run", "--query", "bald", "--dropout", "0.3", "--query-opt", "T=1", "--out", tmp_path / "r",
                    *QUICK)
    one_line(result, 2, "strategy 'bald': T = 1, must be >= 2")
    assert not (tmp_path / "r").exists()  # was: round 0 trained, then the first query failed


def test_modal_missing_is_said_before_the_run_directory_is_made(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modAL" else real(name, *a))
    result = invoke("run", "--out", tmp_path / "r", *QUICK)
    one_line(result, 2, "pip install --no-deps modAL-python")
    assert not (tmp_path / "r").exists()


def test_the_model_check_passes_every_installed_model():
    from alplug.models import available_models, build_on_meta_device

    for name in [n for n in available_models() if n != "timm"] + ["timm:resnet10t"]:
        module = build_on_meta_device(name, in_channels=1, num_classes=7)
        assert module.num_classes == 7


def test_alplug_traceback_shows_what_a_plugin_raised(tmp_path, model_plugins, monkeypatch):
    monkeypatch.setenv("ALPLUG_TRACEBACK", "1")
    result = invoke("run", "--model", "meta-only", "--out", tmp_path / "r", *QUICK)
    assert result.exit_code == 1 and "Traceback" in result.output and "fake_heads.py" in result.output
    assert result.output.strip().splitlines()[-1].startswith("alplug: error: training model 'meta-only'")


def test_a_model_whose_operations_have_no_meta_kernel_is_checked_on_the_cpu(monkeypatch):
    """An operation the meta device cannot run is no reason to refuse a model: the same batch goes through a real
    module on the CPU, and only its outcome counts."""
    import torch

    from alplug.models import build_on_meta_device

    real_linear = torch.nn.functional.linear

    def no_meta_kernel(x, *args, **kwargs):
        if x.is_meta:
            raise NotImplementedError("Could not run 'aten::addmm' with arguments from the 'Meta' backend")
        return real_linear(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", no_meta_kernel)
    assert build_on_meta_device("resnet18", in_channels=1, num_classes=4).num_classes == 4
