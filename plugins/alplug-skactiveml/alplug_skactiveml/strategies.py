"""scikit-activeml's pool strategies as alplug strategies: ``fn(learner, X_pool, n_instances=1, *, random_state=None)``.

Each runs on the model's penultimate embeddings (``bridge``). The first four need no labels and are meant for
the cold start (``--initial``) and the first rounds: TypiClust and ProbCover pick typical, well-spread images,
MaxHerding maximises kernel coverage of the pool, DAL picks what a discriminator tells apart from the labeled
set. The rest read the model's probabilities through its own head.
"""
from __future__ import annotations

from alplug.strategies.outputs import StrategyError, labeled_inputs

from .bridge import _seed, model_head, run_query


def _seeded_kmeans(seed) -> dict | None:
    """Clue and DropQuery leave their k-means unseeded (TypiClust and ProbCover pass their seed on): without
    this, the same ``random_state`` would pick different images."""
    return None if seed is None else {"random_state": seed}


def typiclust(learner, X_pool, n_instances: int = 1, *, random_state=None, k: int = 20):
    """TypiClust (Hacohen et al. 2022): the most typical image of each of the largest clusters without a label.

    ``k``: neighbours that define typicality (the paper's 20; scikit-activeml defaults to 5).
    """
    from skactiveml.pool import TypiClust

    return run_query(TypiClust(k=k, random_state=_seed(random_state)), learner, X_pool, n_instances)


def probcover(learner, X_pool, n_instances: int = 1, *, random_state=None, alpha: float = 0.95):
    """ProbCover (Yehuda et al. 2022): greedy max coverage of delta-balls around the embeddings.

    delta is chosen so that a share ``alpha`` of the balls stay pure under k-means clusters.
    """
    from skactiveml.pool import ProbCover

    return run_query(ProbCover(alpha=alpha, random_state=_seed(random_state)), learner, X_pool, n_instances)


def maxherding(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """MaxHerding (Bae et al. 2025): greedy maximisation of RBF-kernel coverage of the pool."""
    from skactiveml.pool import MaxHerding

    return run_query(MaxHerding(random_state=_seed(random_state)), learner, X_pool, n_instances)


def dal(learner, X_pool, n_instances: int = 1, *, random_state=None, greedy: bool = False, C: float = 0.1):
    """Discriminative active learning (Gissin & Shalev-Shwartz 2019): what looks least like the labeled set.

    Picks the pool images a logistic-regression discriminator on the embeddings is surest are not labeled.

    The discriminator is refitted after every pick (scikit-activeml's default), or once with ``greedy``.
    ``C``: its inverse L2 strength; embeddings of a few hundred images are often linearly separable, and an
    unregularised fit then runs to its iteration limit at every pick.
    """
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import DiscriminativeAL
    from sklearn.linear_model import LogisticRegression

    if len(labeled_inputs(learner) if labeled_inputs(learner) is not None else ()) == 0:
        raise StrategyError("dal tells the pool apart from the labeled set, and there is none yet; pick a first "
                            "batch with typiclust, probcover or maxherding")
    seed = _seed(random_state)
    discriminator = SklearnClassifier(LogisticRegression(C=C, max_iter=1000), classes=[0, 1], random_state=seed)
    return run_query(DiscriminativeAL(greedy_selection=greedy, random_state=seed), learner, X_pool, n_instances,
                     discriminator=discriminator)


def falcun(learner, X_pool, n_instances: int = 1, *, random_state=None, gamma: float = 10.0):
    """Falcun (Gilhuber et al. 2024): margin uncertainty plus diversity in the model's probability space."""
    from skactiveml.pool import Falcun

    return run_query(Falcun(gamma=gamma, random_state=_seed(random_state)), learner, X_pool, n_instances,
                     clf=model_head(learner), fit_clf=False)


def dropquery(learner, X_pool, n_instances: int = 1, *, random_state=None, dropout_rate: float = 0.75,
              n_dropout_samples: int = 5):
    """DropQuery (Gupte et al. 2024): predictions that flip under dropout on the embedding, one per cluster."""
    from skactiveml.pool import DropQuery

    seed = _seed(random_state)
    qs = DropQuery(dropout_rate=dropout_rate, n_dropout_samples=n_dropout_samples, random_state=seed,
                   cluster_algo_dict=_seeded_kmeans(seed))
    return run_query(qs, learner, X_pool, n_instances, clf=model_head(learner), fit_clf=False)


def clue(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """CLUE (Prabhu et al. 2021): entropy-weighted k-means on the embeddings, the image nearest each centre."""
    from skactiveml.pool import Clue

    seed = _seed(random_state)
    return run_query(Clue(random_state=seed, cluster_algo_dict=_seeded_kmeans(seed)), learner, X_pool, n_instances,
                     estimator=model_head(learner), fit_estimator=False)


def contrastive_al(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Contrastive AL (Margatina et al. 2021): predictions far from those of the labeled nearest neighbours."""
    from skactiveml.pool import ContrastiveAL

    qs = ContrastiveAL(clf_embedding_flag_name="return_embeddings", random_state=_seed(random_state))
    return run_query(qs, learner, X_pool, n_instances, clf=model_head(learner), fit_clf=False)
