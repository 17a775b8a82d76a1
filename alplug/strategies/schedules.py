"""Strategy schedules: ``typiclust@100,margin`` queries with TypiClust until 100 images are labeled, then margin.

At small budgets a model's uncertainty means little and typical, well-spread images do better; later,
uncertainty takes over (Hacohen et al. 2022, "Active learning on a budget"). Neither modAL nor scikit-activeml
switches strategies by budget, so this is ours. A round that starts below a stage's limit is queried by that
stage, all of its batch; the limit counts every labeled image, the initial set included.
"""
from __future__ import annotations

from ..errors import UsageError
from .outputs import labeled_inputs


def parse_schedule(query: str) -> list[tuple[str, int | None]]:
    """``"a@100,b@300,c"`` -> [("a", 100), ("b", 300), ("c", None)]; every stage but the last needs a limit."""
    stages = []
    parts = [p.strip() for p in query.split(",")]
    for i, part in enumerate(parts):
        name, at, limit = part.partition("@")
        last = i == len(parts) - 1
        if not name.strip():
            raise UsageError(f"--query {query!r}: stage {i + 1} names no strategy; write e.g. typiclust@100,margin")
        if last:
            if at:
                raise UsageError(f"--query {query!r}: the last stage runs to the end, so it takes no @LABELS "
                                 f"(write e.g. typiclust@100,margin)")
            stages.append((name.strip(), None))
            continue
        if not at:
            raise UsageError(f"--query {query!r}: stage {name.strip()!r} needs @LABELS, the labeled-image count "
                             "at which the next stage takes over (e.g. typiclust@100,margin)")
        try:
            value = int(limit)
        except ValueError:
            raise UsageError(f"--query {query!r}: {limit!r} after @ must be a whole number of labels") from None
        if value < 1 or (stages and value <= stages[-1][1]):
            raise UsageError(f"--query {query!r}: the @LABELS limits must be >= 1 and increase from stage to stage")
        stages.append((name.strip(), value))
    return stages


def split_queries(text: str) -> list[str]:
    """``alplug compare --query`` lists: ``"random,typiclust@30,margin"`` -> ["random", "typiclust@30,margin"].

    A stage with @LABELS always continues into the next, so a schedule needs no quoting inside the list.
    """
    queries, current = [], []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        current.append(part)
        if "@" not in part:
            queries.append(",".join(current))
            current = []
    if current:  # a trailing stage with @: parse_schedule reports it
        queries.append(",".join(current))
    return queries


def labeled_count(learner) -> int:
    labeled = labeled_inputs(learner)
    return 0 if labeled is None else len(labeled)


def stage_name(stages: list[tuple[str, int | None]], labels: int) -> str:
    """The stage that queries when ``labels`` images are labeled."""
    for name, limit in stages:
        if limit is None or labels < limit:
            return name
    return stages[-1][0]


def scheduled(stages: list[tuple[str, int | None]], strategies: dict):
    """A strategy that hands each query to the stage for the learner's labeled count; ``strategies``: by name."""

    def schedule(learner, X_pool, n_instances: int = 1, *, random_state=None):
        """Each stage's strategy until its @LABELS limit, then the next."""
        fn = strategies[stage_name(stages, labeled_count(learner))]
        return fn(learner, X_pool, n_instances, random_state=random_state)

    schedule.alplug_stage_for = lambda labels: stage_name(stages, labels)
    return schedule


def chosen_by(strategy, query: str, labels: int) -> str:
    """Which strategy ``query`` uses with ``labels`` images labeled: the stage of a schedule, else ``query``."""
    stage_for = getattr(strategy, "alplug_stage_for", None)
    return stage_for(labels) if stage_for is not None else query
