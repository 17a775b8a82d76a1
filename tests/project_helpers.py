"""A labeling project on generated images, and an `alplug label` server in a subprocess."""
import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from alplug.cli import cli
from data_formats import write_unlabeled_folder

# Small and fast: 32 px, one epoch, six images per batch (two per class trains a model after batch 1).
# --ssl-epochs 2: a project takes the few-labels recipe, whose pretraining would otherwise run its full length
PROJECT_SETTINGS = ["--image-size", "32", "--epochs", "1", "--per-round", "6", "--batch-size", "8", "--ssl-epochs", "2"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_labels(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)


def batch_rows(csv_path):
    with open(csv_path) as f:
        return list(csv.DictReader(f))


def make_project(tmp_path: Path, per_class=8, *extra) -> tuple[Path, dict]:
    truth = write_unlabeled_folder(tmp_path / "images", per_class=per_class)
    project = tmp_path / "proj"
    result = invoke("project", "init", project, "--images", tmp_path / "images", "--classes", "zero,one,two",
                    *PROJECT_SETTINGS, *extra)
    assert result.exit_code == 0, result.output
    return project, truth


class LabelServer:
    """`alplug label PROJECT` in its own process (so a test can SIGKILL it)."""

    def __init__(self, project: Path, *args):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "alplug", "label", str(project), *map(str, args)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("server exited:\n" + "".join(self.lines))
            self.lines.append(line)
            match = re.search(r"at (http://\S+/)(\?token=(\S+))?", line)
            if match:
                self.url, self.token = match.group(1), match.group(3)
                return
        raise AssertionError("server did not start:\n" + "".join(self.lines))

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def project_with_a_batch(tmp_path: Path) -> tuple[Path, dict]:
    """A project whose first (random) batch of six is queued, and the truth."""
    from alplug.project import ProjectStore
    from alplug.project.learn import next_batch

    project, truth = make_project(tmp_path)
    store = ProjectStore(project)
    next_batch(store, 6)  # random: no model yet
    store.close()
    return project, truth


def client_for(project, **kw):
    """A Flask test client of the labeling server for ``project``."""
    from alplug.project.server import create_app

    app = create_app(project, batch_size=6, annotator="ann", **kw)
    app.testing = True
    return app.test_client()


def post(http, path, **payload):
    return http.post(path, json=payload)
