"""Figures of a single run."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import RoundRecord


def plot_learning_curve(history: list[RoundRecord], path: Path, *, title: str = "", test_acc: float | None = None) -> None:
    """Validation accuracy against the number of labels, with the final test accuracy marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    labels = [row.labels for row in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(labels, [row.val2_acc for row in history], "o-", label="val-2 (scores rounds)")
    ax.plot(labels, [row.val1_acc for row in history], "s--", alpha=0.6, label="val-1 (watches training)")
    if test_acc is not None and labels:
        ax.plot([labels[-1]], [test_acc], "r*", markersize=12, label=f"test {test_acc:.3f}")
    ax.set_xlabel("labeled images")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
