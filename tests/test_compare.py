import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import QUICK

from alplug.cli import cli
from alplug.report import label_cost, labels_to_reach, normalised_aulc

STUDY = list(QUICK)  # 400 digits: every run's queries and pool passes over 200 images, not 1,400


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "s"
    result = invoke("compare", "--query", "random,margin", "--seeds", 2, "--out", out, *STUDY)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_pair_runs_and_same_seed_means_same_start(study):
    out, _ = study
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == ["margin-s0", "margin-s1", "random-s0", "random-s1"]
    for seed in (0, 1):
        a, b = rows(out / "runs" / f"random-s{seed}")[0], rows(out / "runs" / f"margin-s{seed}")[0]
        a.pop("train_seconds"), b.pop("train_seconds")
        assert a == b  # same splits, same initial set, same seeded model: only the queries differ
    assert rows(out / "runs" / "random-s0")[0] != rows(out / "runs" / "random-s1")[0]


def test_report_files_and_self_contained_html(study):
    out, output = study
    report = out / "report"
    for name in ("learning_curves.png", "learning_curves.svg", "queried_classes.png", "report.md",
                 "report.html", "summary.csv", "label_cost.csv", "queried_classes.csv"):
        assert (report / name).is_file(), name
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="learning_curves.png"' not in html
    with open(report / "summary.csv") as f:
        summary = {r["strategy"]: r for r in csv.DictReader(f)}
    assert summary["random"]["runs"] == "2" and "±" in summary["margin"]["final test accuracy"]
    assert summary["random"]["p vs random"] == "—"
    assert "labels to 0.9 (test)" in summary["random"]  # every round's test accuracy is in history.csv
    with open(report / "stopping.csv") as f:
        stopping = [(r["strategy"], r["rule"]) for r in csv.DictReader(f)]
    assert stopping == [(q, rule) for q in ("random", "margin")
                        for rule in ("kappa=0.99", "uncertainty=0.05", "patience=3", "hindsight")]
    assert "## Stopping rules" in (report / "report.md").read_text()


def test_rerun_resumes_and_retries_only_what_is_missing(study):
    out, _ = study
    (out / "runs" / "margin-s1" / "result.json").unlink()  # as if it had been interrupted before finishing
    state = json.loads((out / "runs" / "margin-s1" / "state.json").read_text())
    state["finished"] = False
    (out / "runs" / "margin-s1" / "state.json").write_text(json.dumps(state))
    result = invoke("compare", "--query", "random,margin", "--seeds", 2, "--out", out, *STUDY)
    assert result.exit_code == 0, result.output
    assert "1 of 4 runs to do" in result.output and "margin-s1: finished" in result.output


def test_a_failing_run_does_not_stop_the_study_and_is_retried(tmp_path, monkeypatch):
    from alplug import loop

    real_run = loop.ActiveLearningRun.run

    def flaky(self, run_dir):
        if self.config.query == "margin" and self.config.seed == 1:
            raise RuntimeError("out of memory (simulated)")
        return real_run(self, run_dir)

    monkeypatch.setattr(loop.ActiveLearningRun, "run", flaky)
    out = tmp_path / "s"
    args = ["compare", "--query", "random,margin", "--seeds", 2, "--out", out, *STUDY]
    result = invoke(*args)
    assert result.exit_code == 1 and "margin-s1" in result.output and "retry" in result.output
    assert "out of memory (simulated)" in (out / "runs" / "margin-s1" / "error.txt").read_text()
    assert (out / "runs" / "margin-s0" / "result.json").is_file() and (out / "report" / "report.md").is_file()
    monkeypatch.setattr(loop.ActiveLearningRun, "run", real_run)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "1 of 4 runs to do" in result.output and not (out / "runs" / "margin-s1" / "error.txt").exists()


def test_bad_study_input(tmp_path, study):
    out, _ = study
    result = invoke("compare", "--query", "random,margn,bladd", "--out", tmp_path / "x", *STUDY)
    assert result.exit_code == 2 and "'margn'" in result.output and "'bladd'" in result.output
    assert not (tmp_path / "x").exists()
    result = invoke("compare", "--query", "random,margin", "--seeds", 2, "--out", out, *STUDY, "--epochs", 3)
    assert result.exit_code == 2 and "epochs: 1 != 3" in result.output
    result = invoke("report", tmp_path)
    assert result.exit_code == 2 and "not an alplug study" in result.output


def test_report_formulas():
    run = {"labels": np.array([10, 20, 30, 40]), "val2": np.array([0.5, 0.8, 0.92, 0.96])}
    assert labels_to_reach(run, 0.9) == 30 and labels_to_reach(run, 0.99) is None
    assert normalised_aulc(run) == pytest.approx(np.trapezoid(run["val2"], run["labels"]) / 30)
    # goal 0.9 reached after K = 2 rounds: 10 initial + 20 queried labels, 2 trainings at λ = 15
    assert label_cost(run, 0.9, cost_label=2.0, lam=15) == pytest.approx(2 * 10 + 2 * 15 * 2 + 2 * 20)
    assert label_cost(run, 0.99, 1.0, 15) is None


def test_options_go_only_to_the_strategy_they_name(tmp_path):
    out = tmp_path / "s"
    result = invoke("compare", "--query", "random,kmeans-boundary", "--seeds", 1, "--out", out, *STUDY,
                    "--query-opt", "kmeans-boundary.n_clusters=3")
    assert result.exit_code == 0, result.output
    assert (out / "runs" / "random-s0" / "result.json").is_file()
    config = json.loads((out / "runs" / "kmeans-boundary-s0" / "result.json").read_text())["config"]
    assert config["query_options"] == {"kmeans-boundary.n_clusters": 3}
    random_config = json.loads((out / "runs" / "random-s0" / "result.json").read_text())["config"]
    assert random_config["query_options"] == {}


def test_report_goal_defaults_to_the_studys_and_can_be_overridden(study, tmp_path):
    out, _ = study
    assert "Cost to reach val-2 accuracy 0.9:" in (out / "report" / "report.md").read_text()  # study set none
    result = invoke("report", out, "--goal", 0.55)
    assert result.exit_code == 0, result.output
    assert "Cost to reach val-2 accuracy 0.55:" in (out / "report" / "report.md").read_text()
    result = invoke("report", out, "--goal", 1.5)
    assert result.exit_code == 2 and "--goal = 1.5" in result.output
    # a study made with --goal prices labels at that goal (its runs also stop there)
    goal_study = tmp_path / "g"
    result = invoke("compare", "--query", "random", "--seeds", 1, "--out", goal_study, *STUDY, "--goal", 0.3)
    assert result.exit_code == 0, result.output
    assert "Cost to reach val-2 accuracy 0.3:" in (goal_study / "report" / "report.md").read_text()


def test_mean_curve_averages_like_points_and_interpolates_unlike_ones():
    from alplug.report import mean_curve

    same = [{"labels": np.array([10, 20, 30]), "val2": np.array([0.5, 0.7, 0.8])},
            {"labels": np.array([10, 20, 30, 40]), "val2": np.array([0.3, 0.5, 0.6, 0.9])}]
    x, mean, std = mean_curve(same)  # fixed rate: the plain per-round mean, over the rounds all reached
    assert list(x) == [10, 20, 30] and mean == pytest.approx([0.4, 0.6, 0.7])
    assert std == pytest.approx(np.std([[0.5, 0.7, 0.8], [0.3, 0.5, 0.6]], axis=0, ddof=1))
    # adaptive rate: seeds labeled 20 and 30 images in round 1; each is read at the other's count too
    unlike = [{"labels": np.array([10, 20, 40]), "val2": np.array([0.5, 0.7, 0.9])},
              {"labels": np.array([10, 30, 42]), "val2": np.array([0.5, 0.8, 0.9])}]
    x, mean, _ = mean_curve(unlike)
    assert list(x) == [10, 20, 30, 40]
    assert mean == pytest.approx([0.5, (0.7 + 0.65) / 2, (0.8 + 0.8) / 2, (0.9 + (0.8 + 0.1 * 10 / 12)) / 2])


def test_a_study_run_in_this_process_gives_back_its_torch_thread_count(tmp_path):
    """--jobs 1 runs each run inline; its --threads are the run's, not the calling process's from then on."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        result = invoke("compare", "--query", "random", "--seeds", 1, "--jobs", 1, "--threads", 1,
                        "--out", tmp_path / "s", *STUDY)
        assert result.exit_code == 0, result.output
        assert "(1 torch thread(s) each)" in result.output
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_report_pages_escape_what_they_show(tmp_path):
    """Class and strategy names reach the report's tables: HTML escapes them (Jinja2's autoescape), Markdown keeps
    a `|` inside its cell."""
    from alplug.report import _html, _markdown

    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG fake")
    sections = [("h1", "report"), ("p", "a <b>bold</b> claim"), ("img", ("curve", figure)),
                ("table", [{"class": "<script>alert(1)</script>", "share": "a|b"}]), ("table", [])]
    html = _html(sections)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "(no finished runs)" in html
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in html
    md = _markdown(sections)
    assert "| <script>alert(1)</script> | a\\|b |" in md and "![curve](f.png)" in md
