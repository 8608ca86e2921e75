"""A scikit-learn estimator over the training engine: ``SemiSupervisedRegressor(method="gclss")``.

Tabular users mark unlabelled rows with ``y = NaN`` and call ``fit(X, y)``; the estimator builds an
in-memory :class:`clss.data.RegressionData`, resolves a :class:`clss.config.TrainConfig` and runs
:func:`clss.engine.train` on it, so it trains exactly what ``clss train`` trains.
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from clss.config import resolve_config
from clss.data import RegressionData
from clss.engine import RunDir, predict_batched, train
from clss.engine.threads import validate_threads
from clss.methods import METHODS

__all__ = ["SemiSupervisedRegressor"]



class SemiSupervisedRegressor(RegressorMixin, BaseEstimator):
    """Semi-supervised deep regression (CLSS, GCLSS or a supervised baseline) as a scikit-learn estimator.

    ``fit(X, y)`` takes every row at once: rows with a finite target are labelled, rows with
    ``y = NaN`` are unlabelled. Inputs are standardised on all training rows and targets on the
    labelled rows (as ``clss train`` does); predictions are returned in target units.

    Parameters
    ----------
    method : str, default "gclss"
        A registered method (``clss methods``): ``"gclss"``, ``"clss"`` or ``"supervised"``. A supervised
        method ignores the unlabelled rows entirely (they do not enter the input standardisation either).
    labeled_batch_size, unlabeled_batch_size : int, default 32
        Rows per step from each part; capped at the number of rows available.
    steps : int, default 1000
        Training iterations.
    lr : float, default 1e-3
        AdamW learning rate.
    weight_decay : float, default 0.01
        AdamW (decoupled) weight decay.
    hidden : tuple of int, default (100, 100)
        Widths of the MLP's hidden layers; the last one is the feature dimension the contrastive and
        seriation losses see.
    dropout : float, default 0.1
        Dropout after every hidden layer (GCLSS needs it: its two stochastic passes must differ).
    method_params : dict, optional
        Method hyper-parameters (see ``clss methods``), e.g. ``{"mode": "faithful"}`` for GCLSS.
    validation_fraction : float, default 0.0
        0: train on every labelled row and keep the final weights. In (0, 1): hold out that fraction of
        the labelled rows (at least one), evaluate on them every ``max(1, steps // 20)`` steps and keep
        the weights with the best validation MAE.
    random_state : int, RandomState or None, default None
        Seeds the weights, dropout, batch order and validation split; an int makes ``fit``
        deterministic (on CPU).
    device : str, default "auto"
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``. The fitted network stays there.
    threads : int or "auto", optional
        torch intra-op threads during ``fit``; torch's previous setting is restored when ``fit`` returns.
        ``None`` or ``"auto"``: one thread for small networks (parameters x rows per step below
        :data:`clss.engine.threads.AUTO_ONE_THREAD_BELOW`), else the process's setting; an int >= 1 is
        used as given. The count used is in ``summary_["threads"]``.
    run_dir : str or Path, optional
        ``None``: train in a temporary directory removed after ``fit``. Otherwise a new or empty directory
        that keeps the run's files (``config.yaml``, ``metrics.jsonl``, ``summary.json``, checkpoints,
        plots); it must be new or empty at every ``fit``.
    verbose : bool, default False
        Show the training progress bar.

    Attributes
    ----------
    method_ : clss.methods.Method
        The trained method (a ``torch.nn.Module`` holding the network).
    standardizer_ : clss.data.Standardizer
        Input and target standardisation fitted on the training rows.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        Column names of ``X``, when it was a DataFrame with string column names.
    n_labeled_ : int
        Labelled rows trained on (held-out validation rows excluded).
    n_unlabeled_ : int
        Unlabelled rows trained on (0 for a supervised method).
    history_ : list of dict
        The per-step records of ``metrics.jsonl`` (losses, learning rate, diagnostics, validation metrics).
    summary_ : dict
        The run's ``summary.json``. Its ``val`` and ``test`` entries are both the metrics on the held-out
        labelled rows, or, with ``validation_fraction=0``, on the labelled training rows (a training fit,
        not a generalisation estimate).

    Notes
    -----
    The scikit-learn tags are a regressor's defaults: ``X`` must be finite (``allow_nan=False``) and ``y``
    is required; there is no tag for NaN-marked unlabelled targets, so ``fit`` validates ``y`` itself.
    ``score(X, y)`` is the R² of :class:`~sklearn.base.RegressorMixin` and needs finite targets: pass only
    labelled rows to it. scikit-learn's estimator checks fit fully labelled data, which suits
    ``method="supervised"``: all pass except, by chance, ``check_methods_subset_invariance`` (the float32
    network rounds differently for different batch sizes, ~1e-6 relative). A semi-supervised method
    refuses data without unlabelled rows, so every check that fits fails for it by design.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_diabetes
    >>> from clss import SemiSupervisedRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> y_partial = y.copy()
    >>> y_partial[np.random.default_rng(0).random(len(y)) > 0.2] = np.nan  # 80 % unlabelled
    >>> model = SemiSupervisedRegressor(method="gclss", steps=100, random_state=0).fit(X, y_partial)
    >>> model.predict(X[:3]).shape
    (3,)
    """

    def __init__(self, method: str = "gclss", *, labeled_batch_size: int = 32, unlabeled_batch_size: int = 32,
                 steps: int = 1000, lr: float = 1e-3, weight_decay: float = 0.01,
                 hidden: tuple[int, ...] = (100, 100), dropout: float = 0.1,
                 method_params: dict[str, Any] | None = None, validation_fraction: float = 0.0,
                 random_state: int | np.random.RandomState | None = None, device: str = "auto",
                 threads: int | None = None, run_dir: str | Path | None = None,
                 verbose: bool = False) -> None:
        self.method = method
        self.labeled_batch_size = labeled_batch_size
        self.unlabeled_batch_size = unlabeled_batch_size
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.hidden = hidden
        self.dropout = dropout
        self.method_params = method_params
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.threads = threads
        self.run_dir = run_dir
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> SemiSupervisedRegressor:
        """Train on every row of ``X``; rows whose target is NaN are the unlabelled ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite inputs.
        y : array-like of shape (n_samples,)
            Targets; NaN marks an unlabelled row. Infinite targets are refused (scikit-learn's check).

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, validate_separately=(
            {"dtype": [np.float64, np.float32]},
            {"ensure_2d": False, "ensure_all_finite": "allow-nan", "dtype": np.float64}))
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise ValueError(f"y must hold one target per row, shape (n_samples,); got shape {y.shape}")
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        self._check_params()
        semi = METHODS[self.method].semi_supervised
        labeled = np.flatnonzero(~np.isnan(y))
        unlabeled = np.flatnonzero(np.isnan(y))
        if labeled.size == 0:
            raise ValueError("y has no labelled rows (every target is NaN); at least one finite target is "
                             "needed")
        if semi and unlabeled.size == 0:
            raise ValueError(f"method {self.method!r} is semi-supervised but y has no unlabelled rows (NaN "
                             "targets); mark unlabelled rows with NaN or use method='supervised'")

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        held_out = np.empty(0, dtype=np.int64)
        if self.validation_fraction > 0:
            if labeled.size < 2:
                raise ValueError("validation_fraction > 0 needs at least 2 labelled rows (one to train on, "
                                 "one to validate on)")
            n_val = min(labeled.size - 1, max(1, round(self.validation_fraction * labeled.size)))
            perm = np.random.default_rng(seed).permutation(labeled)
            held_out, labeled = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        train_rows = np.concatenate([labeled, unlabeled]) if semi else labeled
        val_rows = held_out if held_out.size else labeled
        n_lab, n_unl = labeled.size, unlabeled.size if semi else 0
        # Unlabelled targets are hidden from the methods (hidden_truth=False); RegressionData needs finite
        # values, so they are stored as 0.
        data = RegressionData(
            name="in-memory", x_train=X[train_rows], y_train=np.nan_to_num(y[train_rows], nan=0.0),
            x_val=X[val_rows], y_val=y[val_rows], x_test=X[val_rows], y_test=y[val_rows],
            feature_names=list(getattr(self, "feature_names_in_", [f"x{i}" for i in range(X.shape[1])])),
            target_name="y",
            labeled=np.arange(n_lab), unlabeled=np.arange(n_lab, n_lab + n_unl))
        config = resolve_config({}, {
            "dataset": "in-memory", "method": self.method, "method_params": dict(self.method_params or {}),
            "labeled": str(n_lab), "unlabeled": "paper", "seed": seed,
            "model": {"name": "mlp", "hidden": list(self.hidden), "dropout": self.dropout, "init": "default"},
            "optimizer": {"name": "adamw", "lr": self.lr, "weight_decay": self.weight_decay},
            "steps": self.steps, "batch_size": min(self.labeled_batch_size, n_lab),
            "unlabeled_batch_size": min(self.unlabeled_batch_size, max(n_unl, 1)),
            "eval_every": max(1, self.steps // 20) if held_out.size else 0,
            "device": self.device, "hidden_truth": False,
            "threads": "auto" if self.threads is None else self.threads, "progress": self.verbose,
            "plots": self.run_dir is not None})
        # train() seeds torch's global generator; fork it so that fitting leaves the caller's RNG alone.
        where = (tempfile.TemporaryDirectory(prefix="clss-fit-") if self.run_dir is None
                 else nullcontext(self.run_dir))
        with torch.random.fork_rng(), where as out:
            result = train(config, out, data=data)
            self.history_ = RunDir(result.run_dir, resume=True).read_log()
        self.method_ = result.method
        self.standardizer_ = data.standardizer(y_rows=data.labeled)
        self.summary_ = result.summary
        self.n_labeled_, self.n_unlabeled_ = n_lab, n_unl
        return self

    def _check_params(self) -> None:
        """Refuse bad constructor parameters by name before anything is built."""
        def is_int(v: Any) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        def is_real(v: Any) -> bool:
            return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; available: {sorted(METHODS)}")
        for name in ("steps", "labeled_batch_size", "unlabeled_batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not is_real(self.lr) or not 0 < self.lr < np.inf:
            raise ValueError(f"lr must be a finite float > 0, got {self.lr!r}")
        if not is_real(self.weight_decay) or not 0 <= self.weight_decay < np.inf:
            raise ValueError(f"weight_decay must be a finite float >= 0, got {self.weight_decay!r}")
        hidden = self.hidden
        if (not isinstance(hidden, tuple | list) or not hidden
                or not all(is_int(h) and h >= 1 for h in hidden)):
            raise ValueError(f"hidden must be a non-empty tuple of layer widths >= 1, e.g. (100, 100); got "
                             f"{hidden!r}")
        if not is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if self.method_params is not None and not isinstance(self.method_params, dict):
            raise ValueError(f"method_params must be a dict of method hyper-parameters or None, got "
                             f"{type(self.method_params).__name__}")
        if not is_real(self.validation_fraction) or not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        device = self.device
        if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
        validate_threads(self.threads)

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets (in the units of the training targets).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        device = next(self.method_.parameters()).device
        # float32 like the training inputs (RegressionData), so that predict sees what training saw.
        x = torch.as_tensor(self.standardizer_.transform_x(X.astype(np.float32)), device=device)
        pred = predict_batched(self.method_, x)
        return self.standardizer_.inverse_y(pred.double().cpu().numpy())
