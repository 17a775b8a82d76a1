"""How much does alplug's query step cost? Every figure is a ratio against a baseline measured in this run.

    uv run python benchmarks/query_benchmark.py            # everything (about 8 minutes on a 2-core CPU)
    uv run python benchmarks/query_benchmark.py --only 1,2

0. `alplug --help` start-up / a bare Python start-up
1. every registered strategy: query time / one deterministic predict_proba over the same pool
   (ResNet-18 with a dropout head, 10,000 digits-derived 32x32 images, n_instances = 50)
2. BALD, T = 20: alplug / the same query done the way baal does it (MCDropoutModule, full-model passes),
   and the rank agreement of the two score vectors next to that of two independent baal-style draws
3. one active-learning round through alplug's loop / the same round written by hand with modAL + skorch:
   directly, and accounted (both do the same compute, which is checked; their time around it is compared)
4. peak resident memory while querying a 1,000,000-image memory-mapped pool with margin and with BALD
5. on a CUDA machine only: pool-scoring images per second, and that as a fraction of the FLOP-bound ideal
6. evaluation and training time in the channels-last memory layout / in NCHW, which decide alplug's CPU layouts
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_INSTANCES = 50


def timed(fn, repeat=1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def digits_pool(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct size x size images made from scikit-learn's digits: upsampled, shifted by up to 2 px, noised."""
    import torch
    import torch.nn.functional as F

    from alplug.data import load_dataset

    d = load_dataset("digits")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(d.y), n)
    big = F.interpolate(torch.as_tensor(d.X[pick]).float(), size=(size, size), mode="bilinear").numpy()
    shifts = rng.integers(-2, 3, size=(n, 2))
    out = np.empty_like(big)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = np.roll(big[i], (dy, dx), axis=(-2, -1))
    out += rng.normal(0, 6, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8), d.y[pick]


def trained_learner(images, y, labeled=200, epochs=5, dropout=0.3, image_size=None, eval_batch_size=256,
                    arch="resnet18"):
    import torch

    from alplug.estimators import make_estimator
    from alplug.modal_compat import active_learner_class
    from alplug.strategies.baseline import random_sampling

    torch.manual_seed(0)
    net = make_estimator(arch, in_channels=1, num_classes=10, dropout=dropout, epochs=epochs,
                         images=images, image_size=image_size, eval_batch_size=eval_batch_size)
    ids = np.arange(labeled)
    learner = active_learner_class()(net, random_sampling, X_training=ids, y_training=y[ids])
    return learner


def figure_0():
    """`alplug --help` start-up / a bare Python start-up."""
    alplug = [sys.executable, "-c", "from alplug.cli import main; import sys; sys.argv = ['alplug', '--help']; main()"]
    bare = [sys.executable, "-c", "pass"]
    run = lambda cmd: subprocess.run(cmd, capture_output=True, check=False)  # noqa: E731
    cli, _ = timed(lambda: run(alplug), repeat=5)
    python, _ = timed(lambda: run(bare), repeat=5)
    print(f"\n[0] `alplug --help` {cli:.3f} s; bare Python start-up {python:.3f} s: x{cli / python:.1f} "
          f"(torch, skorch, modAL and baal are imported only by the commands that need them)")
    return {"help_seconds": cli, "python_seconds": python, "ratio": cli / python}


# Strategies are timed family by family, in rounds: each round times the baseline, then every strategy of
# the family once, and one more baseline closes the family. A family's ratios use its fastest baseline and
# each strategy's fastest round. This VM's speed drifts by 10-30% over the minutes figure 1 takes and single
# timings jump by up to 30% for a few seconds, so one baseline at the start misjudges later families, and two
# timings of one strategy back to back can both land in one slow stretch; rounds spread them apart.
# Families with targets of 1.05 and 1.2 get two rounds.
FAMILIES = (
    ("uncertainty", ("random", "least-confidence", "margin", "entropy", "ratio")),
    ("MC dropout", ("bald", "batchbald", "mc-entropy", "mc-least-confidence", "mc-margin", "mc-ratio",
                    "variation-ratios")),
    ("diversity", ("kmeans-boundary", "coreset", "badge")),
)
ROUNDS = {"uncertainty": 2, "MC dropout": 2}


def figure_1(learner, pool):
    """Query time of every strategy / one predict_proba over the pool, timed in rounds next to its family."""
    from alplug.strategies import available_strategies, resolve_query
    from alplug.strategies.outputs import shared_model_outputs

    net = learner.estimator
    installed = set(available_strategies())
    listed = {name for _, names in FAMILIES for name in names}
    families = [(family, [n for n in names if n in installed]) for family, names in FAMILIES]
    families.append(("others", sorted(installed - listed)))
    print(f"\n[1] pool {len(pool)} images 32x32, ResNet-18 (dropout head 0.3), n_instances={N_INSTANCES}")
    baseline = lambda: timed(lambda: net.predict_proba(pool))[0]  # noqa: E731
    first = baseline()  # also the warm-up: first calls pay for oneDNN's kernels
    print(f"    baseline: predict_proba over the pool {first:.2f} s at first ({len(pool) / first:.0f} images/s); "
          "each family is timed in rounds (baseline, then each strategy once), closed by one more baseline; its ratios "
          "use its fastest baseline and each strategy's fastest round")
    strategies = {}
    for family, names in families:
        for name in names:
            strategies[name] = resolve_query(name)
            learner.query_strategy = strategies[name]
            learner.query(pool[:120], n_instances=2, random_state=0)  # imports (baal, hdbscan) are not query cost

    def query():
        with shared_model_outputs():  # as alplug's loop queries
            return learner.query(pool, n_instances=N_INSTANCES, random_state=0)

    rows, family_baselines = {}, {}
    for family, names in families:
        rounds = ROUNDS.get(family, 1)
        bases, seconds = [], {name: [] for name in names}
        for _ in range(rounds):
            bases.append(baseline())
            for name in names:
                learner.query_strategy = strategies[name]
                seconds[name].append(timed(query)[0])
        bases.append(baseline())
        family_base = min(bases)
        family_baselines[family] = bases
        print(f"    {family} ({rounds} round{'s' if rounds > 1 else ''}): baselines "
              f"{', '.join(f'{b:.2f}' for b in bases)} s")
        for name, ts in seconds.items():
            t = min(ts)
            rows[name] = {"seconds": t, "ratio": t / family_base, "baseline_seconds": family_base, "rounds": ts}
            print(f"      {name:<20} {t:7.2f} s   x{t / family_base:5.2f}"
                  + (f"   (rounds: {', '.join(f'{x:.2f}' for x in ts)} s)" if rounds > 1 else ""))
    return {"baseline_seconds": first, "family_baselines": family_baselines, "pool": len(pool),
            "strategies": rows}


def baal_style_bald(net, pool, T, seed):
    """BALD the way baal's documentation does it: MCDropoutModule, T full forward passes, then BALD."""
    import copy

    import torch
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import MCDropoutModule

    model = MCDropoutModule(copy.deepcopy(net.module_)).eval()
    out = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for Xi, _ in net.get_iterator(net.get_dataset(pool), training=False):
            out.append(torch.stack([torch.softmax(model(Xi), 1) for _ in range(T)], dim=-1))
    probs = torch.cat(out).numpy()  # [N, C, T]
    return BALD().get_uncertainties(probs)


def figure_2(learner, pool, T=20):
    from scipy.stats import spearmanr

    from alplug_bald import mc_scores
    from alplug_bald.strategies import _bald_scores

    net = learner.estimator
    # Best of several on both sides: the second baal-style draw, needed for the agreement anyway, is timed too.
    ours_s, ours = timed(lambda: mc_scores(net, pool, _bald_scores, T=T, random_state=1), repeat=3)
    baal_a_s, baal_a = timed(lambda: baal_style_bald(net, pool, T, seed=2))
    baal_b_s, baal_b = timed(lambda: baal_style_bald(net, pool, T, seed=3))
    baal_s = min(baal_a_s, baal_b_s)
    agree = spearmanr(ours, baal_a).statistic
    between_draws = spearmanr(baal_a, baal_b).statistic
    print(f"\n[2] BALD, T={T}, pool {len(pool)} images 32x32, ResNet-18 with dropout head")
    print(f"    baal-style (MCDropoutModule, {T} full passes) {baal_s:.2f} s (best of 2); alplug (head-only, streamed) "
          f"{ours_s:.2f} s (best of 3): alplug / baal = x{ours_s / baal_s:.3f} ({baal_s / ours_s:.1f} times faster)")
    print(f"    rank agreement (Spearman) alplug vs baal-style {agree:.3f}; two baal-style draws {between_draws:.3f}")
    return {"pool": len(pool), "T": T, "alplug_seconds": ours_s, "baal_seconds": baal_s,
            "ratio": ours_s / baal_s, "speedup": baal_s / ours_s, "spearman_alplug_vs_baal": agree,
            "spearman_baal_vs_baal": between_draws}


class ComputeMeter:
    """Wall time spent in torch compute, and how much compute: outermost module calls, backward passes, optimizer steps.

    A round's other time (data loading, skorch's and modAL's bookkeeping, alplug's run directory, files) is
    what a layer over the same libraries can add. Two versions of a round that do the same compute differ
    only there, and that difference can be timed far more precisely than two noisy totals on a shared machine.
    """

    BACKBONES = ("ResNet", "SqueezeNet")

    def __enter__(self):
        import torch
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self.seconds, self.work, self._depth, self._t0, self._counted = 0.0, {}, 0, 0.0, []
        self._handles = [register_module_forward_pre_hook(self._forward_in),
                         register_module_forward_hook(self._forward_out),
                         register_optimizer_step_pre_hook(lambda *_: self._start("optimizer steps", 1)),
                         register_optimizer_step_post_hook(lambda *_: self._stop())]
        self._backward = torch.Tensor.backward
        meter = self

        def backward(tensor, *args, **kwargs):
            meter._start("backward passes", 1)
            try:
                return meter._backward(tensor, *args, **kwargs)
            finally:
                meter._stop()

        torch.Tensor.backward = backward
        return self

    def __exit__(self, *exc):
        import torch

        for handle in self._handles:
            handle.remove()
        torch.Tensor.backward = self._backward

    def _start(self, key, amount):
        # Time counts once, at the outermost call (skorch runs forward and backward inside the optimizer
        # step's closure); work counts backbone passes wherever they run (a query may call the backbone
        # through alplug's one-pass outputs, a hand-written one through the whole model).
        if key is not None:
            self.work[key] = self.work.get(key, 0) + amount
        if self._depth == 0:
            self._t0 = time.perf_counter()
        self._depth += 1

    def _stop(self):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0

    def _forward_in(self, module, inputs):
        x = inputs[0] if inputs else None
        # alplug's early model check builds on PyTorch's meta device: no compute, not counted
        counted = not (getattr(x, "is_meta", False) or any(p.is_meta for p in module.parameters(recurse=False)))
        self._counted.append(counted)
        if counted:
            key = None
            if type(module).__name__ in self.BACKBONES:
                key = f"backbone {'training' if module.training else 'evaluation'} images"
            self._start(key, int(getattr(x, "shape", [1])[0]))

    def _forward_out(self, module, inputs, output):
        if self._counted.pop():
            self._stop()


def figure_3(repeat=3):
    """One round (initial fit, query 50, teach, score) through alplug's loop vs written by hand."""
    import torch

    from alplug.config import RunConfig
    from alplug.data import load_dataset, make_splits
    from alplug.estimators import make_estimator
    from alplug.loop import ActiveLearningRun, round_seed
    from alplug.modal_compat import active_learner_class
    from alplug.plots import plot_learning_curve
    from alplug.rundir import RunDirectory
    from alplug.strategies import resolve_query
    from alplug.strategies.uncertainty import margin

    config = RunConfig(query="margin", rounds=1)  # the README's defaults, one query round

    def through_alplug():
        with tempfile.TemporaryDirectory() as tmp:
            job = ActiveLearningRun(config, echo=lambda *_: None)
            job.run(RunDirectory.create(Path(tmp) / "run", config))
        return 0.0, job.history[1]["queried_ids"]

    def by_hand():
        """The round with modAL and skorch alone; returns the seconds spent writing outputs, the queried ids."""
        data = load_dataset("digits")
        s = make_splits(data, seed=0, n_start=config.n_start)
        X, y = data.X, data.y
        net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=config.epochs,
                             valid_data=(X[s.val1], y[s.val1]))
        torch.manual_seed(round_seed(0, 0))
        learner = active_learner_class()(net, margin, X_training=X[s.initial], y_training=y[s.initial])
        # each round scores val-1, val-2 and the test set, as alplug's history does (test_acc: study curves)
        history = [{"labels": len(s.initial), "val1_acc": learner.score(X[s.val1], y[s.val1]),
                    "val2_acc": learner.score(X[s.val2], y[s.val2]), "test_acc": learner.score(X[s.test], y[s.test])}]
        idx, _ = learner.query(X[s.pool], n_instances=config.per_round, random_state=round_seed(0, 1))
        torch.manual_seed(round_seed(0, 1))
        learner.teach(X[s.pool[idx]], y[s.pool[idx]])
        history.append({"labels": len(s.initial) + len(idx), "val1_acc": learner.score(X[s.val1], y[s.val1]),
                        "val2_acc": learner.score(X[s.val2], y[s.val2]),
                        "test_acc": learner.score(X[s.test], y[s.test])})
        test = learner.score(X[s.test], y[s.test])
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # what the run directory holds: model, history, learning curve
            torch.save(net.module_.state_dict(), Path(tmp) / "model.pt")
            (Path(tmp) / "history.json").write_text(json.dumps(history))
            plot_learning_curve(history, Path(tmp) / "curve.png", test_acc=test)
        return time.perf_counter() - t0, [int(i) for i in s.pool[idx]]

    variants = {"by hand": by_hand, "alplug": through_alplug}
    runs = {name: [] for name in variants}
    # First calls pay for imports, matplotlib's font cache and oneDNN's kernels for each tensor shape:
    # not a round's cost. One hand-written round meets every shape both versions use.
    by_hand()
    resolve_query("margin")  # alplug's strategy lookup reads the entry points once per process
    for i in range(repeat):
        # AB then BA: a machine that speeds up or slows down during the figure hits both alike
        for name in (list(variants) if i % 2 == 0 else list(reversed(variants))):
            with ComputeMeter() as meter:
                t0 = time.perf_counter()
                outputs_s, queried = variants[name]()
                total = time.perf_counter() - t0
            runs[name].append({"total": total, "compute": meter.seconds, "rest": total - meter.seconds,
                               "outputs": outputs_s, "work": meter.work, "queried": queried})
    hand, ours = runs["by hand"], runs["alplug"]
    same_compute = all(h["work"] == o["work"] for h, o in zip(hand, ours))
    same_queries = all(h["queried"] == o["queried"] for h, o in zip(hand, ours))
    # Direct: one ratio per repeat (neighbours in time), then their median.
    direct = sorted(o["total"] / h["total"] for h, o in zip(hand, ours))
    # Accounted: the same compute in both (checked), so alplug's cost is its extra time around the
    # compute, which is timed to a few hundredths of a second instead of the totals' +-10%.
    extra = sorted(o["rest"] - h["rest"] for h, o in zip(hand, ours))
    accounted = sorted(1 + (o["rest"] - h["rest"]) / h["total"] for h, o in zip(hand, ours))
    bare = sorted(o["total"] / (h["total"] - h["outputs"]) for h, o in zip(hand, ours))
    med = lambda xs: float(np.median(xs))  # noqa: E731
    fmt = lambda xs: ", ".join(f"{x:.3f}" for x in xs)  # noqa: E731
    work = ", ".join(f"{v:,} {k}" for k, v in sorted(hand[0]["work"].items()))
    print(f"\n[3] one round on digits (ResNet-18, {config.epochs} epochs, {config.n_start}/class + "
          f"{config.per_round} queried, margin), {repeat} paired repeats")
    print(f"    compute, both versions: {work}; identical in every repeat: {'yes' if same_compute else 'NO'}; "
          f"same {config.per_round} images queried: {'yes' if same_queries else 'NO'}")
    if not same_compute:
        print(f"    by hand {hand[0]['work']}\n    alplug  {ours[0]['work']}")
    for name, rs in runs.items():
        total, compute, rest = (med([r[k] for r in rs]) for k in ("total", "compute", "rest"))
        print(f"    {name:<8} total {total:.2f} s = compute {compute:.2f} s + around it {rest:.2f} s (medians)")
    print(f"    alplug / by hand, direct: x{med(direct):.3f} (per repeat {fmt(direct)})")
    print(f"    alplug / by hand, accounted (same compute, alplug's extra time around it "
          f"{med(extra):+.2f} s): x{med(accounted):.3f} (per repeat {fmt(accounted)})")
    print(f"    alplug / by hand without writing any outputs, direct: x{med(bare):.3f} (per repeat {fmt(bare)})")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("work", "queried")} for r in rs]  # noqa: E731
    return {"same_compute": same_compute, "same_queries": same_queries, "work": hand[0]["work"],
            "ratio_direct": med(direct), "ratios_direct": direct, "ratio_accounted": med(accounted),
            "ratios_accounted": accounted, "extra_seconds": extra, "ratio_vs_no_outputs": med(bare),
            "alplug": strip(ours), "by_hand": strip(hand)}


MEMORY_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
import torch
torch.set_num_threads(1)  # margin's and bald's children run side by side on the machine's cores
from benchmarks.query_benchmark import trained_learner
from alplug.strategies import resolve_query
from alplug.strategies.outputs import shared_model_outputs

def rss_gib():
    # VmHWM: this process's peak resident set. ru_maxrss would be wrong here: Linux carries
    # it across fork+exec, so the child would report the benchmark parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

images = np.load(sys.argv[1], mmap_mode="r")
y = np.arange(len(images)) % 10
# SqueezeNet 1.1 at 17 px (its smallest input), batches of 1,024: the fastest of alplug's models at the
# smallest size it takes, so the million-image passes fit the benchmark's budget (per-batch costs weigh more
# on tiny images, and a bigger batch can only raise the peak). Its dropout sits in the head, as ResNet's.
learner = trained_learner(images, y, labeled=200, epochs=1, image_size=17, eval_batch_size=1024,
                          arch="squeezenet1_1")
options = {"T": 20} if sys.argv[2] == "bald" else {}
learner.query_strategy = resolve_query(sys.argv[2], options)
pool = np.arange(200, len(images))
before = rss_gib()
t0 = time.perf_counter()
with shared_model_outputs():
    idx, _ = learner.query(pool, n_instances=50, random_state=0)
print(json.dumps({"before_gib": before, "peak_gib": rss_gib(), "seconds": time.perf_counter() - t0}))
"""


def figure_4(n=1_000_000):
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pool.npy"
        images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 1, 32, 32))
        rng = np.random.default_rng(0)
        for start in range(0, n, 100_000):
            images[start:start + 100_000] = rng.integers(0, 256, (min(100_000, n - start), 1, 32, 32), dtype=np.uint8)
        images.flush()
        del images
        in_ram = n * 32 * 32 * 4 / 2**30
        print(f"\n[4] peak resident memory, {n:,}-image pool of 32x32 images, memory-mapped uint8 on disk "
              f"({n * 1024 / 2**30:.2f} GiB; {in_ram:.2f} GiB as float32 in RAM); SqueezeNet 1.1 at 17 px, batches "
              f"of 1,024, to keep the CPU time short (memory does not depend on the model's size); margin and "
              f"bald in two processes side by side, one thread each")
        # Each child's peak is its own VmHWM, so running them together changes nothing measured but the time
        # (a third less wall time than one after the other, with two threads each).
        # Their output goes to files, not pipes: a pipe not read while waiting for the other child could fill
        # and stall this one.
        names = ("margin", "bald")
        logs = {name: (Path(tmp) / f"{name}.out", Path(tmp) / f"{name}.err") for name in names}
        children = {}
        try:
            for name in names:
                with open(logs[name][0], "w") as out_file, open(logs[name][1], "w") as err_file:
                    children[name] = subprocess.Popen(
                        [sys.executable, "-c", MEMORY_CHILD, str(path), name, str(root)],
                        stdout=out_file, stderr=err_file)
            for child in children.values():
                child.wait(timeout=900)
        finally:
            for child in children.values():
                child.kill()  # no-op for a child that has exited
        out = {}
        for name in names:
            stdout, stderr = (f.read_text() for f in logs[name])
            if children[name].returncode != 0:
                raise RuntimeError(stderr[-2000:])
            r = json.loads(stdout.strip().splitlines()[-1])
            out[name] = r
            print(f"    {name:<8} peak {r['peak_gib']:.2f} GiB (process before the query {r['before_gib']:.2f} GiB, "
                  f"x{r['peak_gib'] / r['before_gib']:.2f}; pool as float32 would be {in_ram:.2f} GiB); "
                  f"query {r['seconds']:.0f} s")
    return out


# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def figure_5():
    import torch

    if not torch.cuda.is_available():
        print("\n[5] no CUDA device on this machine: GPU throughput not measured")
        return None
    from torch.utils.flop_counter import FlopCounterMode

    from alplug.estimators import make_estimator

    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"\n[5] {name}, bf16 autocast, channels-last, eval batch 1024")
    out = {"device": name, "dtype": "bfloat16", "rows": []}
    for arch in ("resnet18", "squeezenet1_1"):
        for size in (32, 224):
            n = 200_000 if size == 32 else 20_000
            images = np.random.default_rng(0).integers(0, 256, (n, 3, size, size), dtype=np.uint8)
            net = make_estimator(arch, in_channels=3, num_classes=10, image_size=size, images=images,
                                 eval_batch_size=1024, device="cuda")
            net.initialize()
            with FlopCounterMode(display=False) as counter:
                with torch.no_grad():
                    net.module_.eval()(torch.zeros(1, 3, size, size, device="cuda"))
            flops = counter.get_total_flops()
            net.predict_proba(np.arange(4096))  # warm-up: cuDNN autotuning, allocator
            torch.cuda.synchronize()
            seconds, _ = timed(lambda: net.predict_proba(np.arange(n)))
            rate = n / seconds
            ideal = peak / flops if peak else None
            row = {"model": arch, "size": size, "images_per_s": rate, "flops_per_image": flops,
                   "fraction_of_ideal": rate / ideal if ideal else None}
            out["rows"].append(row)
            frac = f"{row['fraction_of_ideal']:.1%} of the FLOP-bound ideal" if ideal else "peak unknown"
            print(f"    {arch:<14} {size:>3} px {rate:12,.0f} images/s  ({flops / 1e9:.2f} GFLOP/image; {frac})")
    return out


def figure_6(rounds=4):
    """Channels-last / NCHW: evaluation and training time of the same module, which decide alplug's CPU layouts."""
    import torch
    import torch.nn.functional as F

    from alplug.models import ImageClassifier

    print("\n[6] memory layout: channels-last / NCHW, same weights and batches (alplug's CPU layouts follow it); "
          f"evaluation of 256 images and 10 training steps of 32 at 32 px, fastest of {rounds} alternating rounds")
    out = {}
    eval_x = torch.randint(0, 256, (256, 1, 8, 8), dtype=torch.uint8)
    train_x, train_y = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8), torch.randint(0, 10, (32,))
    for arch in ("resnet18", "squeezenet1_1"):
        torch.manual_seed(0)
        nhwc = ImageClassifier(arch, in_channels=1, num_classes=10, dropout=0.3).use_channels_last()
        nchw = ImageClassifier(arch, in_channels=1, num_classes=10, dropout=0.3)
        nchw.load_state_dict(nhwc.state_dict())
        times = {}
        for layout, model in (("nchw", nchw), ("channels_last", nhwc)):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def evaluate(model=model):  # the module's own forward: prepare() gives batches its layout
                with torch.inference_mode():
                    model.eval()(eval_x)

            def train(model=model, optimizer=optimizer):
                model.train()
                for _ in range(10):
                    loss = F.cross_entropy(model(train_x), train_y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            evaluate(), train()  # first calls build oneDNN's kernels
            times[layout] = {"evaluate": evaluate, "train": train}
        best = {(layout, step): float("inf") for layout in times for step in ("evaluate", "train")}
        for _ in range(rounds):  # alternating, so a slow stretch of the machine hits both layouts
            for layout, steps in times.items():
                for step, fn in steps.items():
                    best[layout, step] = min(best[layout, step], timed(fn)[0])
        row = {f"{step}_ratio": best["channels_last", step] / best["nchw", step] for step in ("evaluate", "train")}
        row.update({f"{layout}_{step}_seconds": t for (layout, step), t in best.items()})
        out[arch] = row
        print(f"    {arch:<14} evaluation x{row['evaluate_ratio']:.2f} ({best['channels_last', 'evaluate']:.3f} s vs "
              f"{best['nchw', 'evaluate']:.3f} s), training x{row['train_ratio']:.2f} "
              f"({best['channels_last', 'train']:.2f} s vs {best['nchw', 'train']:.2f} s)")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="0,1,2,3,4,5,6", help="comma-separated figures to run")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in logs as it happens
    wanted = {int(x) for x in args.only.split(",")}
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, CUDA {torch.cuda.is_available()}")
    results = {}
    t0 = time.perf_counter()
    if 0 in wanted:
        results["0"] = figure_0()
    if wanted & {1, 2}:
        images, y = digits_pool(10_200)
        learner = trained_learner(images, y)
        pool = np.arange(200, len(images))
        if 1 in wanted:
            results["1"] = figure_1(learner, pool)
        if 2 in wanted:
            results["2"] = figure_2(learner, pool[:2000])
    if 3 in wanted:
        results["3"] = figure_3()
    if 4 in wanted:
        results["4"] = figure_4()
    if 5 in wanted:
        results["5"] = figure_5()
    if 6 in wanted:
        results["6"] = figure_6()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
