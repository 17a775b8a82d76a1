"""`alplug recipes`: training recipes compared over seeds, paired by (strategy, seed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import wilcoxon

from alplug.cli import cli
from alplug.config import RunConfig
from alplug.recipes import compare_recipes, holm
from alplug.study import Study

from conftest import write_finished_run


def make_study(path, accuracies: dict[int, float], **settings) -> Study:
    """A finished study of `random` whose run for seed s reached accuracies[s] (files as alplug writes them)."""
    study = Study(path, ["random"], sorted(accuracies), RunConfig(n_start=3, rounds=0, **settings))
    study.prepare()
    for run in study.runs:
        write_finished_run(study.run_dir(run), [{"round": 0, "labels": 30, "val2_acc": 0.5}],
                           {"test_accuracy": accuracies[run.seed], "classes": ["a", "b"]})
    return study


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01, 2 x 0.02, max(0.04, previous) -> 0.03, 0.04, 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_recipes_are_paired_by_seed_and_corrected(tmp_path):
    base = {s: 0.60 + 0.01 * s for s in range(8)}
    better = {s: base[s] + 0.05 + 0.001 * s for s in range(8)}  # better on every seed
    mixed = {s: base[s] + (0.01 if s % 2 else -0.01) for s in range(8)}
    studies = [make_study(tmp_path / "a", base), make_study(tmp_path / "b", better, ssl="simclr", epochs=100),
               make_study(tmp_path / "c", mixed, freeze_backbone=True)]
    rows = compare_recipes(studies)
    assert [r["recipe"] for r in rows] == ["baseline", "epochs=100, ssl=simclr", "freeze-backbone=True"]
    assert rows[1]["wins"] == 8 and rows[1]["losses"] == 0 and rows[2]["wins"] == rows[2]["losses"] == 4
    p_better = wilcoxon([better[s] - base[s] for s in range(8)]).pvalue
    p_mixed = wilcoxon([mixed[s] - base[s] for s in range(8)]).pvalue
    assert rows[1]["p"] == pytest.approx(p_better) and rows[2]["p"] == pytest.approx(p_mixed)
    assert [rows[1]["p_holm"], rows[2]["p_holm"]] == pytest.approx(holm([p_better, p_mixed]))
    assert rows[1]["median"] == pytest.approx(np.median(list(better.values())))
    assert rows[1]["median_diff"] == pytest.approx(np.median([better[s] - base[s] for s in range(8)]))


def test_the_command_prints_a_table_and_refuses_what_cannot_be_paired(tmp_path):
    make_study(tmp_path / "a", {0: 0.5, 1: 0.6})
    make_study(tmp_path / "b", {0: 0.7, 1: 0.8}, semi="pseudo")
    make_study(tmp_path / "other", {0: 0.7, 1: 0.8}, dataset="mnist")
    result = CliRunner().invoke(cli, ["recipes", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "| semi=pseudo | 2 | 30 | 0.750 |" in result.output and "2/0/0 of 2" in result.output
    result = CliRunner().invoke(cli, ["recipes", str(tmp_path / "a"), str(tmp_path / "other")])
    assert result.exit_code == 2 and "not on the same test sets" in result.output and "dataset" in result.output
    # another input size is a recipe: the same images are tested, at another resolution
    make_study(tmp_path / "small", {0: 0.6, 1: 0.7}, image_size=16)
    result = CliRunner().invoke(cli, ["recipes", str(tmp_path / "a"), str(tmp_path / "small")])
    assert result.exit_code == 0 and "| image-size=16 | 2 |" in result.output, result.output
    result = CliRunner().invoke(cli, ["recipes", str(tmp_path / "a")])
    assert result.exit_code == 2 and "two or more" in result.output
    result = CliRunner().invoke(cli, ["recipes", str(tmp_path / "a"), str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not an alplug study" in result.output


def make_curve_study(path, queries: dict[str, dict[int, list[float]]], **settings) -> Study:
    """A finished study whose run (strategy q, seed s) has the test curve queries[q][s] at 10, 20, 30 ... labels."""
    seeds = sorted({s for curves in queries.values() for s in curves})
    study = Study(path, list(queries), seeds, RunConfig(n_start=1, rounds=2, **settings))
    study.prepare()
    for run in study.runs:
        curve = queries[run.query][run.seed]
        write_finished_run(study.run_dir(run), [{"round": i, "labels": 10 * (i + 1), "val2_acc": 0.5, "test_acc": acc}
                                                for i, acc in enumerate(curve)],
                           {"test_accuracy": curve[-1], "classes": ["a", "b"]})
    return study


def test_arms_of_different_studies_are_paired_by_seed_on_labels_to_reach():
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    a = make_curve_study(tmp / "a", {"random": {0: [0.5, 0.8, 0.96], 1: [0.5, 0.9, 0.94], 2: [0.6, 0.95, 0.97]},
                                     "margin": {0: [0.5, 0.5, 0.5], 1: [0.5, 0.5, 0.5], 2: [0.5, 0.5, 0.5]}})
    b = make_curve_study(tmp / "b", {"typiclust": {0: [0.96, 0.97, 0.97], 1: [0.9, 0.95, 0.96],
                                                   2: [0.95, 0.96, 0.97]}}, initial="typiclust", n_initial=10)
    rows = compare_recipes([a, b], ["random", "typiclust"], "labels-to=0.95")
    # random needs 30, 31 (never reached: one more than its 30 labels), 20; typiclust 10, 20, 10
    assert rows[0]["median"] == 30 and rows[0]["max"] == 31
    assert rows[1]["recipe"] == "typiclust (initial=typiclust, n-initial=10)"
    assert rows[1]["wins"] == 3 and rows[1]["losses"] == 0  # fewer labels is better
    assert rows[1]["median_diff"] == -11
    rows = compare_recipes([a, b], ["random", "typiclust"], "acc-at=20")
    assert rows[0]["median"] == pytest.approx(0.9) and rows[1]["median"] == pytest.approx(0.96)
    with pytest.raises(Exception, match="for every study"):
        compare_recipes([a, b], ["random", None])
    with pytest.raises(Exception, match="no finished run of 'margn'"):
        compare_recipes([a, b], ["random", "margn"])


@pytest.mark.parametrize("metric", ["labels-to=2", "acc-at=0", "best", "labels-to"])
def test_bad_metric_is_one_line(tmp_path, metric):
    make_study(tmp_path / "a", {0: 0.5, 1: 0.6})
    make_study(tmp_path / "b", {0: 0.7, 1: 0.8}, semi="pseudo")
    result = CliRunner().invoke(cli, ["recipes", "--metric", metric, str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2 and "--metric" in result.output and len(result.output.strip().splitlines()) == 1
