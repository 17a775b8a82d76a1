"""Named recipes (--recipe, alplug.presets) and the label-free scattering model they use (docs/low-budget.md)."""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from kills import run_and_kill_after_round

from alplug.cli import cli
from alplug.config import RunConfig
from alplug.errors import UsageError
from alplug.models.module import ImageClassifier, build_on_meta_device
from alplug.presets import RECIPES, DataFacts, apply_recipe

# A run that finishes in seconds: 300 digits, one label per class, one head epoch (the user's, kept).
SMALL = ["--n-start", "1", "--per-round", "5", "--epochs", "1", "--ssl-epochs", "2", "--test-size", "100",
         "--val1-size", "40", "--val2-size", "40"]


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory, digits):
    """300 digits at 32 px (each pixel a 4x4 block): the recipe's scattering-trunk settings (8 px digits take its
    pretrained small-images settings instead)."""
    path = tmp_path_factory.mktemp("data") / "digits300-32px.npz"
    np.savez(path, X=np.kron(digits.X[:300, 0], np.ones((4, 4), dtype=digits.X.dtype)), y=digits.y[:300])
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- the scattering model ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels, side", [(1, 32), (3, 48)])
def test_scattering_is_fixed_and_fits_any_channel_count_and_size(channels, side):
    model = ImageClassifier("scattering", channels, 7, image_size=side).eval()
    assert not list(model.backbone.parameters()) and not list(model.backbone.buffers())  # nothing to learn or save
    x = torch.randint(0, 256, (3, channels, side, side), dtype=torch.uint8)
    features = model.features(x)
    assert features.shape == (3, channels * 81, side // 4, side // 4) and torch.isfinite(features).all()
    assert model(x).shape == (3, 7) and model.embed(x).shape == (3, model.embedding_dim) == (3, channels * 81)
    torch.testing.assert_close(pickle.loads(pickle.dumps(model))(x), model(x))  # studies ship models between
    torch.testing.assert_close(copy.deepcopy(model)(x), model(x))                # processes; evaluation copies them
    build_on_meta_device("scattering", in_channels=channels, num_classes=7, image_size=side)  # the output check


def test_scattering_sees_an_inverted_image_alike_but_for_its_mean():
    """Orders 1 and 2 are moduli of wavelet responses: the same for an image and its negative (light on dark or
    dark on light, as in hard-digits); order 0, a local mean, changes sign."""
    model = ImageClassifier("scattering", 1, 3).eval()
    x = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    a, b = model.features(x), model.features(255 - x)
    torch.testing.assert_close(a[:, 1:], b[:, 1:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a[:, :1], -b[:, :1], atol=1e-4, rtol=1e-4)
    assert a[:, 1:].abs().max() > 0.1  # not trivially zero


def test_scattering_refuses_weights_and_too_small_images(tmp_path):
    with pytest.raises(UsageError, match="no pretrained weights named 'DEFAULT'"):
        ImageClassifier("scattering", 1, 3, weights="DEFAULT")
    other = tmp_path / "squeezenet.pt"
    torch.save(ImageClassifier("squeezenet1_1", 1, 3).state_dict(), other)
    with pytest.raises(UsageError, match="do not fit scattering: 0 missing and 50 unexpected keys"):
        ImageClassifier("scattering", 1, 3, weights=str(other))
    with pytest.raises(UsageError, match="at least 4 px"):
        ImageClassifier("scattering", 1, 3, image_size=2).eval()(torch.zeros(1, 1, 2, 2))


# ---- the scattering trunk (scattering-conv), pretrained on stored views ------------------------------------------

def test_scattering_conv_learns_only_its_trunk_and_fits_any_channel_count():
    model = ImageClassifier("scattering-conv", 3, 5, image_size=32).eval()
    assert not list(model.backbone.front.parameters()) and list(model.backbone.trunk.parameters())
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert model(x).shape == (2, 5) and model.embed(x).shape == (2, model.embedding_dim) == (2, 128)
    torch.testing.assert_close(pickle.loads(pickle.dumps(model))(x), model(x))
    build_on_meta_device("scattering-conv", in_channels=1, num_classes=4, image_size=32)
    with pytest.raises(UsageError, match="no pretrained weights named 'DEFAULT'"):
        ImageClassifier("scattering-conv", 1, 3, weights="DEFAULT")


def _pretrain_trunk(images, seed: int, method: str = "simclr", epochs: int = 3):
    from alplug.ssl import PretrainSettings, pretrain

    settings = PretrainSettings(method=method, epochs=epochs, model="scattering-conv", in_channels=images.shape[1],
                                image_size=32, weights=None, hflip=False, seed=seed, batch_size=16)
    return pretrain(settings, images, np.arange(len(images)))


def test_pretraining_a_fixed_front_computes_each_views_coefficients_once_and_trains_the_trunk(monkeypatch):
    """The point of the stored views: the scattering transform sees each image and each of its FRONT_VIEWS views
    once, whatever the epochs; the trunk's weights move; the same seed gives the same weights, another seed others."""
    from alplug import ssl
    from alplug.models.scattering_module import ScatteringBackbone

    images = np.random.default_rng(0).integers(0, 256, (24, 3, 32, 32), dtype=np.uint8)
    seen = []
    real = ScatteringBackbone.forward
    monkeypatch.setattr(ScatteringBackbone, "forward", lambda self, x: seen.append(len(x)) or real(self, x))
    trained = _pretrain_trunk(images, seed=1)
    assert sum(seen) == 24 * (1 + ssl.FRONT_VIEWS)  # 3 epochs, yet no pass beyond the stored views
    after = trained.backbone.trunk.state_dict()
    again = _pretrain_trunk(images, seed=1).backbone.trunk.state_dict()
    other = _pretrain_trunk(images, seed=2).backbone.trunk.state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after)
    assert not torch.equal(after["1.weight"], other["1.weight"])
    torch.manual_seed(1)
    untrained = ImageClassifier("scattering-conv", 3, 2, image_size=32).backbone.trunk.state_dict()
    assert not torch.equal(untrained["1.weight"], after["1.weight"])  # the trunk trained from where the seed put it


def test_byol_trains_the_trunk_over_stored_views_too():
    images = np.random.default_rng(1).integers(0, 256, (16, 1, 32, 32), dtype=np.uint8)
    trained = _pretrain_trunk(images, seed=0, method="byol", epochs=1).backbone.trunk.state_dict()
    torch.manual_seed(0)
    untrained = ImageClassifier("scattering-conv", 1, 2, image_size=32).backbone.trunk.state_dict()
    assert not torch.equal(untrained["1.weight"], trained["1.weight"])
    assert torch.isfinite(trained["1.weight"]).all()


# ---- the recipe, as settings -------------------------------------------------------------------------------------

FACTS = DataFacts(channels=3, side=32, classes=10, pool=1000, labels=100)


def test_a_recipe_sets_only_what_the_user_left_and_says_why():
    config = RunConfig(recipe="few-labels", epochs=7)
    resolved, lines = apply_recipe(config, FACTS, given={"epochs", "recipe"})
    assert resolved.model == "scattering-conv" and resolved.freeze_backbone and resolved.image_size == 32
    assert (resolved.ssl, resolved.ssl_epochs) == ("simclr", 60)
    assert resolved.epochs == 7  # the user's, kept
    assert any(line.startswith("  --epochs 7: yours, kept") for line in lines)
    assert any(line.startswith("  --model scattering-conv: ") for line in lines)
    assert resolved.weight_decay == 0.01 and resolved.augment_copies == 10
    resolved.validate()  # every recipe's choices are valid settings
    for recipe in RECIPES.values():
        for choice in recipe.choose(FACTS, {}):
            assert hasattr(config, choice.setting), f"{recipe.name} sets an unknown setting {choice.setting}"


def test_with_a_model_of_your_own_few_labels_sets_nothing_it_was_not_measured_with():
    config = RunConfig(recipe="few-labels", model="resnet18")
    resolved, lines = apply_recipe(config, FACTS, given={"model", "recipe"})
    assert resolved == config  # no frozen random ResNet, no 32 px cap
    assert any("--model resnet18: yours, kept" in line for line in lines)
    assert any("sets nothing else" in line for line in lines)


def test_an_unknown_recipe_is_one_line():
    assert invoke("run", "--recipe", "few-label").exit_code == 2
    with pytest.raises(UsageError, match="--recipe = 'x', must be 'few-labels' or 'none'"):
        RunConfig(recipe="x").validate()


def test_recipes_without_studies_lists_the_recipes_with_their_evidence():
    result = invoke("recipes")
    assert result.exit_code == 0
    assert "few-labels:" in result.output and "evidence: docs/low-budget.md" in result.output
    assert "--model scattering-conv --image-size 32 --ssl simclr" in result.output and "--freeze-backbone" in result.output


# ---- the recipe, in runs, studies and projects -------------------------------------------------------------------

def test_run_with_a_recipe_records_its_choices_and_keeps_the_users(small_npz, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--recipe", "few-labels", "--dataset", f"npz:{small_npz}", *SMALL, "--rounds", "1",
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "recipe few-labels:" in result.output and "--epochs 1: yours, kept (the recipe would use" in result.output
    settings = RunConfig.from_toml(out / "config.toml")
    assert (settings.recipe, settings.model, settings.freeze_backbone, settings.epochs) == \
        ("few-labels", "scattering-conv", True, 1)
    assert "--model scattering-conv:" in (out / "recipe.txt").read_text()
    assert "--ssl-epochs 2: yours, kept" in (out / "recipe.txt").read_text()
    again = invoke("run", "--resume", out, "--recipe", "few-labels")  # the same flag again is no change
    assert again.exit_code == 0, again.output
    assert "recipe few-labels:" not in again.output  # resolved once, when the run started


def test_a_recipe_run_killed_and_resumed_is_the_run_that_was_not(small_npz, tmp_path):
    args = ["--recipe", "few-labels", "--dataset", f"npz:{small_npz}", *SMALL, "--rounds", "3", "--seed", "2"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert invoke("run", "--out", whole, *args).exit_code == 0
    run_and_kill_after_round(args, killed)
    result = invoke("run", "--resume", killed)
    assert result.exit_code == 0, result.output
    a, b = (json.loads((d / "state.json").read_text()) for d in (killed, whole))
    assert a["queried"] == b["queried"] and len(a["queried"]) == 15
    assert (killed / "config.toml").read_text() == (whole / "config.toml").read_text()


def test_compare_resolves_a_recipe_once_and_resumes_the_study(small_npz, tmp_path):
    out = tmp_path / "study"
    args = ["compare", "--recipe", "few-labels", "--dataset", f"npz:{small_npz}", *SMALL, "--rounds", "0",
            "--query", "random", "--seeds", "2", "--out", out]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "--epochs 1: yours, kept" in first.output and (out / "recipe.txt").is_file()
    runs = list((out / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        settings = RunConfig.from_toml(run / "config.toml")
        assert (settings.model, settings.epochs, settings.recipe) == ("scattering-conv", 1, "few-labels")
    again = invoke(*args)  # the same command resumes it: the recipe resolves to the same settings
    assert again.exit_code == 0, again.output


def test_a_labeling_project_with_a_recipe_trains_what_it_chose(tmp_path):
    from project_helpers import batch_rows, make_project, write_labels

    from alplug.project import ProjectStore

    project, truth = make_project(tmp_path, 8, "--recipe", "few-labels")

    store = ProjectStore(project)
    settings = store.settings
    store.close()
    assert (settings.recipe, settings.model, settings.freeze_backbone) == ("few-labels", "scattering-conv", True)
    assert settings.epochs == 1 and settings.image_size == 32  # the project's own options win
    assert "--model scattering-conv:" in (project / "recipe.txt").read_text()
    paths = sorted(truth)
    write_labels(tmp_path / "labels.csv", [(p, truth[p]) for p in paths[::2]])
    assert invoke("project", "import", project, tmp_path / "labels.csv").exit_code == 0
    result = invoke("project", "next", project, "-n", 3, "--out", tmp_path / "b.csv")
    assert result.exit_code == 0 and "trained on" in result.output, result.output
    assert len(batch_rows(tmp_path / "b.csv")) == 3


def test_the_scattering_head_is_standardised_on_the_training_features_before_each_fit(digits):
    """FitHeadStatistics: per coefficient, over the training images and positions; fixed afterwards, so a prediction
    and an MC-dropout pass see the same scaling."""
    from alplug.estimators import make_estimator

    net = make_estimator("scattering", in_channels=1, num_classes=10, epochs=1, images=digits.X, freeze_backbone=True)
    first, second = np.arange(0, 40), np.arange(40, 100)
    for ids in (first, second):
        net.fit(ids, digits.y[ids])
        features = torch.from_numpy(net.features_of(ids))
        standardise = net.module_.head[1]
        torch.testing.assert_close(standardise.mean, features.mean(dim=(0, 2, 3), keepdim=True))
        torch.testing.assert_close(standardise.std, features.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
    scaled = standardise(features)
    assert abs(float(scaled.mean())) < 1e-4 and abs(float(scaled.std()) - 1) < 0.05
    mean, std = standardise.mean.clone(), standardise.std.clone()
    net.module_.head.train()  # MC dropout's mode: a pass in it moves nothing (a BatchNorm would)
    with torch.no_grad():
        net.module_.head(torch.from_numpy(net.features_of(first)))
    net.module_.head.eval()
    assert torch.equal(standardise.mean, mean) and torch.equal(standardise.std, std)


# ---- fixed augmented copies (--augment-copies) -------------------------------------------------------------------

def _frozen_scattering(digits, copies: int, seed: int):
    from alplug.estimators import make_estimator

    net = make_estimator("scattering", in_channels=1, num_classes=10, epochs=1, images=digits.X, freeze_backbone=True,
                         augment_copies=copies, augment_seed=seed)
    return net.initialize()


def test_augmented_copies_are_fixed_per_image_and_seed_whatever_else_is_computed(digits):
    net = _frozen_scattering(digits, 3, seed=5)
    both = net.copy_features(np.array([7, 3]))
    assert both.shape[:2] == (2, 3)
    alone = _frozen_scattering(digits, 3, seed=5).copy_features(np.array([3]))
    np.testing.assert_array_equal(alone[0], both[1])  # the same copies, computed alone, in another order
    other_seed = _frozen_scattering(digits, 3, seed=6).copy_features(np.array([3]))
    assert not np.allclose(other_seed[0], both[1])
    plain = net.backbone_features(np.array([3]))[0]
    assert all(not np.allclose(copy, plain) for copy in both[1])  # each copy moved the image
    assert not np.allclose(both[1][0], both[1][1])  # and the copies differ from each other


def test_augmented_copies_join_training_only_with_their_images_labels(digits):
    net = _frozen_scattering(digits, 4, seed=0)
    ids = np.arange(20)
    train = net.get_iterator(net.get_dataset(ids, digits.y[ids]), training=True).dataset
    assert len(train) == 20 * 5
    np.testing.assert_array_equal(train.y, np.concatenate([digits.y[ids], np.repeat(digits.y[ids], 4)]))
    np.testing.assert_array_equal(train.features[20:24], net.copy_features(ids[:1])[0])
    valid = net.get_iterator(net.get_dataset(ids, digits.y[ids]), training=False).dataset
    assert len(valid) == 20  # predictions and validation see the images alone
    net.fit(ids, digits.y[ids])
    assert net.predict(ids).shape == (20,)


@pytest.mark.parametrize("settings", [{}, {"freeze_backbone": True, "augment": True}])
def test_an_estimator_made_directly_refuses_copies_it_could_not_use(settings):
    from alplug.estimators import make_estimator

    with pytest.raises(UsageError, match="augment_copies trains on fixed copies"):
        make_estimator("scattering", in_channels=1, num_classes=10, augment_copies=3, **settings)


@pytest.mark.parametrize("settings, problem", [
    ({"augment_copies": 3}, "use it with --freeze-backbone"),
    ({"augment_copies": 3, "freeze_backbone": True, "augment": True}, "without --augment"),
    ({"augment_copies": 101, "freeze_backbone": True}, "--augment-copies = 101, must be in 0..100"),
    ({"semi": "spread"}, "--semi spread spreads the labels over a frozen backbone's fixed features"),
])
def test_settings_that_need_a_frozen_backbone_say_so_in_one_line(settings, problem):
    with pytest.raises(UsageError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        RunConfig(**settings).validate()
    result = invoke("run", *[a for k, v in settings.items() for a in
                             ([f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", v])])
    assert result.exit_code == 2 and problem in result.output


def test_few_labels_steps_aside_for_pretrained_weights():
    """A project (which takes the recipe by default) or a run given --weights keeps its model: the recipe was
    measured without pretrained weights, and scattering has none to load."""
    from alplug.presets import apply_recipe

    config, lines = apply_recipe(RunConfig(recipe="few-labels", weights="w.pt"), FACTS, {"weights"})
    assert config == RunConfig(recipe="few-labels", weights="w.pt")
    assert any("sets nothing" in line for line in lines)
    config, _ = apply_recipe(RunConfig(recipe="few-labels"), dataclasses.replace(FACTS, project=True), set())
    assert (config.model, config.initial) == ("scattering-conv", "random")  # a project's first batches: at random
    config, _ = apply_recipe(RunConfig(recipe="few-labels"), FACTS, set())
    assert (config.model, config.initial) == ("scattering-conv", None)  # a run's first labels are its --n-start


def test_few_labels_on_tiny_images_takes_the_pretrained_small_images_settings():
    """Under 16 px (digits' 8) the recipe takes the settings measured on digits over 24 seeds (0.962 at 30 random
    labels, where the scattering settings reach 0.836), and says so; a model of yours keeps it out."""
    tiny = dataclasses.replace(FACTS, channels=1, side=8)
    config, lines = apply_recipe(RunConfig(recipe="few-labels"), tiny, set())
    assert (config.model, config.image_size, config.ssl, config.ssl_epochs, config.freeze_backbone,
            config.features_from, config.semi, config.semi_threshold, config.epochs) == \
        ("resnet18", 16, "simclr", 200, True, "layer3", "pseudo", 0.9, 100)
    config.validate()
    assert any("--ssl simclr:" in line for line in lines)
    config, _ = apply_recipe(RunConfig(recipe="few-labels"), dataclasses.replace(tiny, side=16), set())
    assert config.model == "scattering-conv"  # 16 px and more: the scattering-trunk settings
    config, _ = apply_recipe(RunConfig(recipe="few-labels", model="scattering"), tiny, {"model"})
    assert config.model == "scattering" and config.ssl is None


def test_few_labels_with_the_fixed_scattering_model_or_without_lightly_takes_the_fixed_settings(monkeypatch):
    """--model scattering asks for the fixed features: the copies and no pretraining. Without lightly the recipe
    cannot pretrain the trunk and says so."""
    config, _ = apply_recipe(RunConfig(recipe="few-labels", model="scattering"), FACTS, {"model"})
    assert (config.model, config.ssl, config.augment_copies, config.weight_decay) == ("scattering", None, 10, 0.01)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightly" else real(name, *a))
    config, lines = apply_recipe(RunConfig(recipe="few-labels"), FACTS, set())
    assert (config.model, config.ssl, config.augment_copies) == ("scattering", None, 10)
    assert any("the pretrained scattering trunk needs lightly" in line for line in lines)
    config.validate()


def test_few_labels_on_tiny_images_without_lightly_says_why_it_takes_scattering(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightly" else real(name, *a))
    config, lines = apply_recipe(RunConfig(recipe="few-labels"), dataclasses.replace(FACTS, side=8), set())
    assert config.model == "scattering" and config.ssl is None
    assert any('need lightly (pip install "alplug[ssl]")' in line for line in lines)
