"""``clss.SemiSupervisedRegressor`` on the diabetes data with 20 % of the training targets known.

Unlabelled rows are marked with ``y = NaN``; the estimator sits in a scikit-learn ``Pipeline`` like any
regressor. It is compared on held-out test rows with a ridge regression, which can only use the labelled
rows, and with the same network trained supervised. The estimator standardises its inputs itself; the
``StandardScaler`` is there to show that it composes with scikit-learn preprocessing (fitted on every
row, labelled or not). Each model is fitted on three random 20 % label draws.

Diabetes is small and nearly linear: with 66 labelled rows the ridge regression beats both networks,
and GCLSS gains little over its supervised counterpart here. The example shows the API, not a benchmark
(see ``benchmarks/operator_sde.py`` for the paper's setting).

Run: ``python examples/sklearn_estimator.py`` (CPU, well under a minute).
"""

import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from clss import SemiSupervisedRegressor


def main() -> None:
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    settings = {"steps": 300, "hidden": (32, 32), "threads": 1}  # a small network for 66 labelled rows
    models = {
        "ridge (labelled rows)": lambda seed: make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
        "supervised MLP": lambda seed: make_pipeline(
            StandardScaler(), SemiSupervisedRegressor("supervised", **settings, random_state=seed)),
        "gclss MLP": lambda seed: make_pipeline(
            StandardScaler(), SemiSupervisedRegressor("gclss", **settings, random_state=seed)),
    }
    scores: dict[str, list[float]] = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        y_partial = y_train.copy()
        y_partial[rng.permutation(len(y_train))[len(y_train) // 5:]] = np.nan  # keep 20 % of the targets
        labeled = ~np.isnan(y_partial)
        for name, make in models.items():
            started = time.perf_counter()
            if name.startswith("ridge"):
                model = make(seed).fit(X_train[labeled], y_partial[labeled])
            else:
                model = make(seed).fit(X_train, y_partial)
            seconds[name] += time.perf_counter() - started
            scores[name].append(mean_absolute_error(y_test, model.predict(X_test)))

    print(f"diabetes: {labeled.sum()} labelled + {(~labeled).sum()} unlabelled training rows, "
          f"{len(y_test)} test rows; 3 label draws")
    print(f"{'model':<24}{'test MAE':>10}{'+-':>7}{'fit s':>8}")
    for name, values in scores.items():
        print(f"{name:<24}{np.mean(values):>10.2f}{np.std(values):>7.2f}{seconds[name] / 3:>8.2f}")


if __name__ == "__main__":
    main()
