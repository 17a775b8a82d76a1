"""The one-screen summary printed at the end of ``alplug run``."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import RoundRecord, RunResult


def format_summary(result: RunResult, history: list[RoundRecord], run_dir) -> str:
    cfg = result.config
    initial = history[0].labels if history else 0
    curve = "  ".join(f"{row.labels}:{row.val2_acc:.3f}" for row in history)
    train_s = sum(row.train_seconds for row in history)
    query_s = sum(row.query_seconds for row in history)
    files = sorted(p.name for p in run_dir.path.iterdir() if not p.name.startswith("."))
    lines = [
        "",
        f"alplug run finished: {cfg['query']} on {cfg['dataset']} with {cfg['model']}, seed {cfg['seed']} "
        f"({result.stop_reason})",
        f"  labels used    {result.labels} ({initial} initial + {result.labels - initial} queried "
        f"in {result.rounds} rounds)",
        f"  val-2 curve    {curve}",
        f"  test accuracy  {result.test_accuracy:.4f} on {result.test_size} images",
        f"  time           train {train_s:.1f}s, query {query_s:.1f}s, device {result.device}",
        f"  files          {run_dir.path}/ {' '.join(files)}",
    ]
    return "\n".join(lines)
