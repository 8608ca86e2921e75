"""Fault suite of :mod:`clss.losses`: bad and extreme inputs to every loss and helper.

Each case expects either a clear error (type and a phrase of its message) or a finite value with a finite
gradient (checked with autograd). ``FINITE`` marks the latter.
"""

import math

import pytest
import torch

from clss.losses import (
    ConOrdCenterLoss,
    ConOrdLoss,
    MultiMarginNPairLoss,
    NonFiniteError,
    NonFiniteLossError,
    OrdinalEntropyLoss,
    PseudoRankPredictionLoss,
    PseudoRankSimilarityLoss,
    RankSimLoss,
    RnCLoss,
    SupConLoss,
    SupReMixLoss,
    blackbox_rank,
    feature_similarity,
    knn_predict,
    label_distance,
    rank_normalised,
)

FINITE = "finite"
NAN, INF = float("nan"), float("inf")
D = 4  # feature dimension of every case

# name: (constructor, target kind, needs at least two rows)
LOSSES = {
    "RnC": (lambda: RnCLoss(), "continuous", True),
    "RnC-cosine": (lambda: RnCLoss(temperature=0.1, feature_sim="cosine"), "continuous", True),
    "SupReMix-paper": (lambda: SupReMixLoss(0.5), "continuous", False),
    "SupReMix-official": (lambda: SupReMixLoss(0.5, mode="official"), "continuous", False),
    "ConOrd": (lambda: ConOrdLoss(), "continuous", True),
    "ConOrd-dot-abs": (lambda: ConOrdLoss(similarity="dot", affinity="inv_abs", disparity="abs"),
                       "continuous", True),
    "ConOrd-one": (lambda: ConOrdLoss(disparity="one"), "continuous", True),
    "ConOrdCenter": (lambda: ConOrdCenterLoss(4, D), "ranks", False),
    "CLOC-paper": (lambda: MultiMarginNPairLoss(4), "ranks", False),
    "CLOC-official": (lambda: MultiMarginNPairLoss(4, normalization="official"), "ranks", False),
    "OE-center": (lambda: OrdinalEntropyLoss(), "continuous", False),
    "OE-euclidean": (lambda: OrdinalEntropyLoss(tightness="euclidean"), "continuous", False),
    "OE-pairwise": (lambda: OrdinalEntropyLoss(variant="pairwise"), "continuous", False),
    "RankSim": (lambda: RankSimLoss(), "continuous", False),
    "PseudoRankSimilarity": (lambda: PseudoRankSimilarityLoss(), "continuous", False),
    "PseudoRankPrediction": (lambda: PseudoRankPredictionLoss(), "continuous", False),
    "SupCon": (lambda: SupConLoss(), "ranks", False),
    "SimCLR": (lambda: SupConLoss(temperature=0.5), None, False),
}
UNBOUNDED = {"RnC", "SupReMix-paper", "SupReMix-official", "ConOrd", "ConOrd-dot-abs", "ConOrd-one",
             "ConOrdCenter", "SupCon", "SimCLR"}  # similarities or norms overflow float32 at |z| = 1e30


def features(n=6, *, views=0, scale=1.0, dtype=torch.float32, poison=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (n, views, D) if views else (n, D)
    z = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    if poison is not None:
        z.view(-1)[1] = poison
    return z.requires_grad_(z.is_floating_point())


def emb(n=6, **kwargs):
    return features(n, **kwargs).detach()


def targets(kind, n=6):
    if kind is None:
        return None
    values = torch.tensor([0, 1, 1, 2, 3, 3] * (n // 6 + 1))[:n]
    return values.float() + (values == 2) * 0.5 if kind == "continuous" else values


def call(loss, z, y, **kwargs):
    return loss(z, **kwargs) if y is None and "targets" not in kwargs else loss(z, y, **kwargs)


def check(loss, z, y, expected, **kwargs):
    """Run one case: ``expected`` is FINITE or ``(exception type, message phrase)``."""
    if expected != FINITE:
        kind, phrase = expected
        with pytest.raises(kind, match=phrase):
            call(loss, z, y, **kwargs)
        return
    value = call(loss, z, y, **kwargs)
    assert torch.isfinite(value).all(), value
    inputs = [t for t in (z, *loss.parameters()) if isinstance(t, torch.Tensor) and t.requires_grad]
    if value.requires_grad and inputs:
        grads = torch.autograd.grad(value.sum(), inputs, allow_unused=True)
        for grad, leaf in zip(grads, inputs, strict=True):
            assert grad is None or (grad.dtype == leaf.dtype and torch.isfinite(grad).all()), grad
    return value


def per_loss(cases):
    """Cross every loss with ``cases``: ``(case id, builder)``, where ``builder(name, kind, pairs)``
    returns ``(features, targets, kwargs, expected)``."""
    return [pytest.param(name, build, id=f"{name}-{case}")
            for name in LOSSES for case, build in cases]


NON_FINITE = (NonFiniteError, r"features contain NaN or inf \(1 of 24 entries\)")
INPUT_CASES = [
    ("nan-features", lambda *_: (features(poison=NAN), NON_FINITE)),
    ("inf-features", lambda *_: (features(poison=INF), NON_FINITE)),
    ("neg-inf-features", lambda *_: (features(poison=-INF), NON_FINITE)),
    ("nan-in-second-view", lambda *_: (features(views=2, poison=NAN),
                                       (NonFiniteError, r"features contain NaN or inf \(1 of 48"))),
    ("zero-features", lambda *_: (features(scale=0.0), FINITE)),
    ("identical-features", lambda *_: (torch.ones(6, D).requires_grad_(), FINITE)),
    ("underflow-1e-30", lambda *_: (features(scale=1e-30), FINITE)),
    ("subnormal-1e-40", lambda *_: (features(scale=1e-40), FINITE)),
    ("float16", lambda *_: (features(dtype=torch.float16), FINITE)),
    ("bfloat16", lambda *_: (features(dtype=torch.bfloat16), FINITE)),
    ("float64", lambda *_: (features(dtype=torch.float64), FINITE)),
    ("two-views", lambda *_: (features(views=2), FINITE)),
    ("no-grad-input", lambda *_: (features().detach(), FINITE)),
    ("int-features", lambda *_: (torch.ones(6, D, dtype=torch.long), (ValueError, "floating point"))),
    ("bool-features", lambda *_: (torch.ones(6, D, dtype=torch.bool), (ValueError, "floating point"))),
    ("complex-features", lambda *_: (torch.ones(6, D, dtype=torch.complex64),
                                     (ValueError, "floating point"))),
    ("4-d-features", lambda *_: (torch.ones(6, 2, 1, D), (ValueError, r"\[N, d\] or \[N, V, d\]"))),
    ("zero-columns", lambda *_: (torch.ones(6, 0), (ValueError, "with d >= 1"))),
    ("list-features", lambda *_: ([[0.0] * D] * 6, (TypeError, "must be a torch.Tensor"))),
]


@pytest.mark.parametrize(("name", "build"), per_loss(INPUT_CASES))
def test_feature_faults(name, build):
    make, kind, _ = LOSSES[name]
    z, expected = build()
    check(make(), z, targets(kind), expected)


def _overflow(name):
    return (NonFiniteError, "overflowed float32") if name in UNBOUNDED else FINITE


@pytest.mark.parametrize("name", list(LOSSES))
def test_overflow_scale_gives_a_clear_error_or_a_finite_result(name):
    make, kind, _ = LOSSES[name]
    check(make(), features(scale=1e30), targets(kind), _overflow(name))


@pytest.mark.parametrize("name", [name for name in LOSSES if name not in UNBOUNDED])
def test_entries_near_the_float32_limit_pass_the_check_whose_sum_overflows(name):
    # The fused check sums the features: here the sum overflows although every entry is finite, and
    # the exact test behind it must let the batch through.
    make, kind, _ = LOSSES[name]
    z = (features().detach().abs() + 1) * 1e38
    assert not math.isfinite(float(z.sum())) and torch.isfinite(z).all()
    # prediction distances |ŷ_i − ŷ_j| summed over 4 outputs overflow; cosines and ranks do not
    expected = (NonFiniteError, "overflowed float32") if name == "PseudoRankPrediction" else FINITE
    check(make(), z.requires_grad_(), targets(kind), expected)


@pytest.mark.parametrize("name", ["RnC-cosine", "CLOC-paper", "OE-center", "OE-pairwise", "RankSim"])
def test_cosine_losses_normalise_rows_near_the_float_limit_instead_of_zeroing_them(name):
    make, kind, _ = LOSSES[name]
    z, loss = features().detach(), make()  # one instance: CLOC's margins are drawn at construction
    torch.manual_seed(0)  # RankSim's deduplication draw
    large = call(loss, z * 1e30, targets(kind))
    torch.manual_seed(0)
    torch.testing.assert_close(large, call(loss, z, targets(kind)))


@pytest.mark.parametrize("name", list(LOSSES))
def test_large_but_representable_scale_is_finite(name):
    make, kind, _ = LOSSES[name]
    check(make(), features(scale=1e15), targets(kind), FINITE)


@pytest.mark.parametrize("name", list(LOSSES))
def test_double_precision_takes_the_overflow_scale(name):
    make, kind, _ = LOSSES[name]
    check(make(), features(scale=1e30, dtype=torch.float64), targets(kind), FINITE)


def _batch_cases(name, kind, pairs):
    one = (ValueError, "at least 2 samples") if pairs else FINITE
    cases = [
        ("batch-of-one", features(1), targets(kind, 1), {}, one),
        ("empty-batch", features(0), None if kind is None else targets(kind, 0), {},
         (ValueError, "at least [12] samples")),
        ("all-rows-masked", features(), targets(kind), {"mask": torch.zeros(6, dtype=torch.bool)},
         (ValueError, "at least [12] samples")),
        ("nan-weights", features(), targets(kind), {"weights": torch.tensor([1, NAN, 1, 1, 1, 1])},
         (ValueError, r"weights contain NaN or inf")),
        ("negative-weights", features(), targets(kind), {"weights": -torch.ones(6)},
         (ValueError, "non-negative")),
        ("bool-weights", features(), targets(kind), {"weights": torch.ones(6, dtype=torch.bool)},
         (ValueError, "weights must be real numbers")),
        ("short-weights", features(), targets(kind), {"weights": torch.ones(5)},
         (ValueError, r"weights must have shape \[N\]")),
        ("zero-weights", features(), targets(kind), {"weights": torch.zeros(6)}, FINITE),
        ("float-mask", features(), targets(kind), {"mask": torch.ones(6)}, (ValueError, "bool")),
        ("nan-features-masked-out", features(poison=NAN), targets(kind),
         {"mask": torch.tensor([False, True, True, True, True, True])}, FINITE),
    ]
    if kind is not None:
        nan_y = targets(kind).double()
        nan_y[2] = NAN
        cases += [
            ("nan-targets", features(), nan_y, {}, (ValueError, r"targets contain NaN or inf \(1 of 6")),
            ("inf-targets", features(), nan_y.nan_to_num(nan=INF), {},
             (ValueError, "targets contain NaN or inf")),
            ("nan-targets-masked-out", features(), nan_y,
             {"mask": torch.tensor([True, True, False, True, True, True])}, FINITE),
            ("mismatched-batch", features(), targets(kind, 5), {}, (ValueError, "batch size mismatch")),
            ("3-d-targets", features(), targets(kind)[:, None, None], {}, (ValueError, r"\[N\] or \[N, m\]")),
            ("complex-targets", features(), targets(kind).to(torch.complex64), {},
             (ValueError, "real numbers")),
            ("all-equal-targets", features(), torch.zeros_like(targets(kind)), {}, FINITE),
        ]
    return cases


BATCH_CASE_IDS = ["batch-of-one", "empty-batch", "all-rows-masked", "nan-weights", "negative-weights",
                  "bool-weights", "short-weights", "zero-weights", "float-mask", "nan-features-masked-out",
                  "nan-targets", "inf-targets", "nan-targets-masked-out", "mismatched-batch", "3-d-targets",
                  "complex-targets", "all-equal-targets"]


@pytest.mark.parametrize(("name", "case"), [
    pytest.param(name, case, id=f"{name}-{case}") for name in LOSSES for case in BATCH_CASE_IDS
    if LOSSES[name][1] is not None or case in BATCH_CASE_IDS[:10]
])
def test_batch_faults(name, case):
    make, kind, pairs = LOSSES[name]
    (_, z, y, kwargs, expected), = [c for c in _batch_cases(name, kind, pairs) if c[0] == case]
    check(make(), z, y, expected, **kwargs)


def test_one_dimensional_predictions_are_the_documented_input_of_the_prediction_loss():
    predictions = features()[:, 0].detach().requires_grad_()
    check(PseudoRankPredictionLoss(), predictions, targets("continuous"), FINITE)
    with pytest.raises(ValueError, match=r"\[N, d\] or \[N, V, d\]"):
        RnCLoss()(torch.randn(6), targets("continuous"))


# ----------------------------------------------------------------------------------- hyper-parameters
HYPER = [
    *(pytest.param(make, exc, phrase, id=f"{label}-{value!r}")
      for label, factory in [("RnC-temperature", lambda t: RnCLoss(temperature=t)),
                             ("SupCon-temperature", lambda t: SupConLoss(temperature=t)),
                             ("SupCon-base_temperature", lambda t: SupConLoss(base_temperature=t)),
                             ("SupReMix-temperature", lambda t: SupReMixLoss(t)),
                             ("ConOrd-temperature", lambda t: ConOrdLoss(temperature=t))]
      for value, exc, phrase in [(0, ValueError, "number > 0"), (-1.0, ValueError, "number > 0"),
                                 (NAN, ValueError, "number > 0"), (INF, ValueError, "number > 0"),
                                 (1e-9, ValueError, r">= 1e-06"), ("0.1", TypeError, "real number"),
                                 (True, TypeError, "real number"), (None, TypeError, "real number")]
      for make in [lambda factory=factory, value=value: factory(value)]),
    pytest.param(lambda: RnCLoss(label_diff="cos"), ValueError, "label_diff must be one of",
                 id="RnC-label_diff"),
    pytest.param(lambda: RnCLoss(feature_sim="dot"), ValueError, "feature_sim must be one of",
                 id="RnC-feature_sim"),
    pytest.param(lambda: RnCLoss(reduction="avg"), ValueError, "reduction must be one of",
                 id="RnC-reduction"),
    pytest.param(lambda: SupConLoss(contrast_mode="any"), ValueError, "contrast_mode",
                 id="SupCon-contrast_mode"),
    pytest.param(lambda: SupReMixLoss(0.5, mode="fast"), ValueError, "mode must be one of",
                 id="SupReMix-mode"),
    pytest.param(lambda: SupReMixLoss(0.5, window=0), ValueError, "window must be > 0",
                 id="SupReMix-window-0"),
    pytest.param(lambda: SupReMixLoss(0.5, window=NAN), ValueError, "window must be > 0",
                 id="SupReMix-window-nan"),
    pytest.param(lambda: SupReMixLoss(0.5, alpha=0), ValueError, "alpha", id="SupReMix-alpha-0"),
    pytest.param(lambda: SupReMixLoss(0.5, beta=INF), ValueError, "beta", id="SupReMix-beta-inf"),
    pytest.param(lambda: ConOrdLoss(eps=0), ValueError, "eps", id="ConOrd-eps-0"),
    pytest.param(lambda: ConOrdLoss(eps=1e-60), ValueError, "eps must be >=", id="ConOrd-eps-underflow"),
    pytest.param(lambda: ConOrdLoss(similarity="cos"), ValueError, "similarity must be one of",
                 id="ConOrd-sim"),
    pytest.param(lambda: ConOrdLoss(affinity="x"), ValueError, "affinity must be one of",
                 id="ConOrd-affinity"),
    pytest.param(lambda: ConOrdLoss(disparity="x"), ValueError, "disparity must be one of",
                 id="ConOrd-disparity"),
    pytest.param(lambda: ConOrdCenterLoss(0, 4), ValueError, "num_ranks and dim", id="Center-num_ranks-0"),
    pytest.param(lambda: ConOrdCenterLoss(4, 4, reduction="x"), ValueError, "reduction",
                 id="Center-reduction"),
    pytest.param(lambda: MultiMarginNPairLoss(1), ValueError, "num_classes must be", id="CLOC-one-class"),
    pytest.param(lambda: MultiMarginNPairLoss(2.5), ValueError, "num_classes must be",
                 id="CLOC-float-classes"),
    pytest.param(lambda: MultiMarginNPairLoss(4, min_margin=NAN), ValueError, "min_margin",
                 id="CLOC-min_margin-nan"),
    pytest.param(lambda: MultiMarginNPairLoss(4, init=(1.0, 0.5)), ValueError, "init", id="CLOC-init-order"),
    pytest.param(lambda: MultiMarginNPairLoss(4, init=(0.5, INF)), ValueError, "init", id="CLOC-init-inf"),
    pytest.param(lambda: MultiMarginNPairLoss(4, fixed_margins={5: 1.0}), ValueError, "boundary 5",
                 id="CLOC-fixed-boundary"),
    pytest.param(lambda: MultiMarginNPairLoss(4, fixed_margins={0: NAN}), ValueError, "fixed margin",
                 id="CLOC-fixed-nan"),
    pytest.param(lambda: MultiMarginNPairLoss(4, normalization="x"), ValueError, "normalization",
                 id="CLOC-normalization"),
    pytest.param(lambda: OrdinalEntropyLoss(variant="x"), ValueError, "variant must be one of",
                 id="OE-variant"),
    pytest.param(lambda: OrdinalEntropyLoss(tightness="x"), ValueError, "tightness", id="OE-tightness"),
    pytest.param(lambda: OrdinalEntropyLoss(weight_norm="x"), ValueError, "weight_norm", id="OE-weight_norm"),
    *(pytest.param(lambda cls=cls, v=v: cls(lambda_val=v), exc, phrase, id=f"{cls.__name__}-lambda-{v!r}")
      for cls in (RankSimLoss, PseudoRankSimilarityLoss, PseudoRankPredictionLoss)
      for v, exc, phrase in [(0, ValueError, "lambda_val"), (NAN, ValueError, "lambda_val"),
                             ("2", TypeError, "lambda_val must be a real number")]),
    pytest.param(lambda: RankSimLoss(target_ties="x"), ValueError, "target_ties", id="RankSim-ties"),
    pytest.param(lambda: RankSimLoss(label_diff="x"), ValueError, "label_diff", id="RankSim-label_diff"),
]


@pytest.mark.parametrize(("make", "exc", "phrase"), HYPER)
def test_bad_hyperparameters(make, exc, phrase):
    with pytest.raises(exc, match=phrase):
        make()


@pytest.mark.parametrize("tau", [1e-6, 1e-3, 1e3, 1e30])
@pytest.mark.parametrize("name", ["RnC", "RnC-cosine", "SupCon", "SupReMix", "ConOrd"])
def test_extreme_but_allowed_temperatures_give_finite_values_and_gradients(name, tau):
    make = {"RnC": lambda: RnCLoss(temperature=tau), "RnC-cosine": lambda: RnCLoss(tau, feature_sim="cosine"),
            "SupCon": lambda: SupConLoss(tau), "SupReMix": lambda: SupReMixLoss(tau),
            "ConOrd": lambda: ConOrdLoss(tau)}[name]
    kind = "ranks" if name == "SupCon" else "continuous"
    z = torch.nn.functional.normalize(features().detach(), dim=1).requires_grad_()
    check(make(), z, targets(kind), FINITE)


# ------------------------------------------------------------------------- loss-specific inputs
SPECIFIC = [
    pytest.param(lambda: ConOrdCenterLoss(4, D)(features(), torch.tensor([0, 1, 2, 3, 4, 0])),
                 ValueError, r"ranks out of range", id="Center-rank-out-of-range"),
    pytest.param(lambda: ConOrdCenterLoss(4, D)(features(), torch.tensor([0, 1, 2, 3, 1.5, 0])),
                 ValueError, "must be integers", id="Center-fractional-rank"),
    pytest.param(lambda: ConOrdCenterLoss(4, D + 1)(features(), targets("ranks")),
                 ValueError, "expected 5", id="Center-wrong-dim"),
    pytest.param(lambda: _poisoned(ConOrdCenterLoss(4, D), "centers")(features(), targets("ranks")),
                 NonFiniteError, r"centers contain NaN or inf \(1 of 16", id="Center-nan-centers"),
    pytest.param(lambda: MultiMarginNPairLoss(4)(features(), torch.tensor([0, 1, 2, 3, 4, 0])),
                 ValueError, "out of range", id="CLOC-class-out-of-range"),
    pytest.param(lambda: MultiMarginNPairLoss(4)(features(), torch.tensor([0.0, 1, 2, 3, 1, 0])),
                 None, None, id="CLOC-integral-float-classes"),
    pytest.param(lambda: MultiMarginNPairLoss(4)(features(), targets("ranks") + 0.5),
                 ValueError, "must be integers", id="CLOC-fractional-class"),
    pytest.param(lambda: _poisoned(MultiMarginNPairLoss(4), "raw_margins")(features(), targets("ranks")),
                 NonFiniteError, r"margins contain NaN or inf", id="CLOC-nan-margins"),
    pytest.param(lambda: SupReMixLoss(0.5)(features(), targets("continuous"),
                                           lambdas=torch.full((6, 6), NAN)),
                 ValueError, r"lambdas must lie in \[0, 1\]", id="SupReMix-nan-lambdas"),
    pytest.param(lambda: SupReMixLoss(0.5)(features(), targets("continuous"), lambdas=torch.ones(5, 5)),
                 ValueError, "lambdas must have shape", id="SupReMix-lambdas-shape"),
    pytest.param(lambda: SupReMixLoss(0.5)(features(), torch.zeros(6, 2)),
                 ValueError, "only scalar targets", id="SupReMix-2-column-targets"),
    pytest.param(lambda: SupReMixLoss(0.5)(features(), targets("continuous"), generator=torch.Generator(),
                                           lambdas=torch.ones(6, 6)),
                 ValueError, "either generator or lambdas", id="SupReMix-generator-and-lambdas"),
    pytest.param(lambda: OrdinalEntropyLoss()(features(), torch.zeros(6, 2)),
                 ValueError, "only scalar targets", id="OE-2-column-targets"),
    pytest.param(lambda: SupConLoss()(features(), targets("ranks"), pair_mask=torch.eye(6, dtype=torch.bool)),
                 ValueError, "either targets or pair_mask", id="SupCon-targets-and-pair_mask"),
    pytest.param(lambda: SupConLoss()(features(), pair_mask=torch.eye(5, dtype=torch.bool)),
                 ValueError, r"pair_mask must have shape", id="SupCon-pair_mask-shape"),
    pytest.param(lambda: SupConLoss()(features(), pair_mask=torch.eye(6, dtype=torch.bool), gather=True),
                 ValueError, "cannot be gathered", id="SupCon-pair_mask-gather"),
    pytest.param(lambda: SupConLoss()(features(), torch.tensor([0.0, 1, NAN, 2, 3, 3])),
                 ValueError, "targets contain NaN", id="SupCon-nan-labels"),
    pytest.param(lambda: RankSimLoss()(features(), torch.zeros(6, 2)), None, None,
                 id="RankSim-2-column-targets"),
]


def _poisoned(loss, attribute):
    with torch.no_grad():
        getattr(loss, attribute).view(-1)[0] = NAN
    return loss


@pytest.mark.parametrize(("run", "exc", "phrase"), SPECIFIC)
def test_loss_specific_inputs(run, exc, phrase):
    if exc is None:
        assert torch.isfinite(run()).all()
        return
    with pytest.raises(exc, match=phrase):
        run()


def test_non_finite_errors_are_value_errors_and_stop_training_as_divergence():
    with pytest.raises(ValueError) as info:
        RnCLoss()(features(poison=NAN), targets("continuous"))
    assert isinstance(info.value, NonFiniteLossError)  # what the training engine stops on


@pytest.mark.parametrize("name", list(LOSSES))
def test_gather_in_one_process_is_the_plain_loss_and_checks_alike(name):
    make, kind, _ = LOSSES[name]
    torch.manual_seed(0)
    plain = call(make(), features(), targets(kind))
    torch.manual_seed(0)
    gathered = call(make(), features(), targets(kind), gather=True)
    torch.testing.assert_close(gathered, plain)
    with pytest.raises(NonFiniteError, match="features contain NaN"):
        call(make(), features(poison=NAN), targets(kind), gather=True)


# ------------------------------------------------------------------------- gradients by finite differences
SMOOTH = [
    pytest.param(lambda: RnCLoss(), "continuous", id="RnC"),
    pytest.param(lambda: RnCLoss(temperature=0.1, feature_sim="cosine"), "continuous", id="RnC-cosine"),
    pytest.param(lambda: SupConLoss(0.1), "ranks", id="SupCon"),
    pytest.param(lambda: ConOrdLoss(), "continuous", id="ConOrd"),
    pytest.param(lambda: OrdinalEntropyLoss(), "continuous", id="OE-center"),
    pytest.param(lambda: OrdinalEntropyLoss(variant="pairwise"), "continuous", id="OE-pairwise"),
    pytest.param(lambda: ConOrdCenterLoss(4, D), "ranks", id="ConOrdCenter"),
]


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize(("make", "kind"), SMOOTH)
def test_gradcheck_at_small_and_large_scales(make, kind, scale):
    torch.manual_seed(0)
    loss = make().double()
    z = (features(dtype=torch.float64).detach() * scale).requires_grad_()
    y = targets(kind)
    # scale-aware finite differences: the step is relative to the features
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,), eps=1e-6 * scale, atol=1e-5,
                                    rtol=1e-4, nondet_tol=0.0)


def test_gradcheck_with_all_targets_tied():
    z = features(dtype=torch.float64).detach().requires_grad_()
    tied = torch.zeros(6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: RnCLoss(0.1, feature_sim="cosine")(x, tied), (z,))
    assert torch.autograd.gradcheck(lambda x: RnCLoss()(x, tied), (z,))
    assert torch.autograd.gradcheck(lambda x: OrdinalEntropyLoss()(x, tied), (z,))


def test_a_zero_row_under_cosine_has_a_finite_gradient():
    # Normalising is discontinuous at 0, so no finite-difference check applies; the gradient is finite.
    z = features().detach()
    z[2] = 0
    for loss, kind in [(RnCLoss(0.1, feature_sim="cosine"), "continuous"),
                       (OrdinalEntropyLoss(), "continuous"), (RankSimLoss(), "continuous"),
                       (MultiMarginNPairLoss(4), "ranks")]:
        check(loss, z.clone().requires_grad_(), targets(kind), FINITE)


# ------------------------------------------------------------------------- helpers
HELPERS = [
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), emb(2), k=2.5),
                 ValueError, "k must be an integer", id="knn-fractional-k"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), emb(2), k=True),
                 ValueError, "k must be an integer", id="knn-bool-k"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), emb(2), k=7),
                 ValueError, r"k must be an integer in \[1, 6\]", id="knn-k-too-large"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), emb(2), 2,
                                     chunk_size=0), ValueError, "chunk_size", id="knn-chunk-0"),
    pytest.param(lambda: knn_predict(emb(poison=NAN), targets("ranks"), emb(2), 2),
                 NonFiniteError, r"train_emb contain NaN or inf \(1 of 24", id="knn-nan-train"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), emb(2, poison=INF), 2),
                 NonFiniteError, "query_emb contain NaN", id="knn-inf-query"),
    pytest.param(lambda: knn_predict(emb(), targets("continuous") * NAN, emb(2), 2),
                 NonFiniteError, "train_targets contain NaN", id="knn-nan-targets"),
    pytest.param(lambda: knn_predict(torch.ones(6, D, dtype=torch.long), targets("ranks"), emb(2), 2),
                 ValueError, "train_emb must be floating point", id="knn-int-embeddings"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks").bool(), emb(2), 2),
                 ValueError, "train_targets must be real numbers", id="knn-bool-targets"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks")[:5], emb(2), 2),
                 ValueError, "train_targets must be", id="knn-short-targets"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), torch.ones(2, D + 1), 2),
                 ValueError, "same d", id="knn-dimension-mismatch"),
    pytest.param(lambda: knn_predict(emb(), targets("ranks"), [[0.0] * D], 2),
                 TypeError, "query_emb must be a torch.Tensor", id="knn-list-query"),
    pytest.param(lambda: rank_normalised(torch.tensor([1.0, NAN, 0.0])),
                 NonFiniteError, "scores contain NaN", id="rank-nan-scores"),
    pytest.param(lambda: rank_normalised(torch.tensor([1.0, 0.0]), ties="dense"),
                 ValueError, "ties must be one of", id="rank-bad-ties"),
    pytest.param(lambda: rank_normalised(torch.tensor(1.0)), ValueError, r"real tensor \[\.\.\., n\]",
                 id="rank-0-d"),
    pytest.param(lambda: blackbox_rank(torch.tensor([[1.0, INF]])), NonFiniteError,
                 "scores contain NaN or inf", id="blackbox-inf-scores"),
    pytest.param(lambda: blackbox_rank(torch.tensor([[1.0, 0.0]]), lambda_val=0), ValueError, "lambda_val",
                 id="blackbox-lambda-0"),
    pytest.param(lambda: blackbox_rank(torch.tensor([[1, 0]])), ValueError, "floating point",
                 id="blackbox-int-scores"),
    pytest.param(lambda: feature_similarity(torch.ones(3, 2), "manhattan"), ValueError, "kind must be one of",
                 id="similarity-bad-kind"),
    pytest.param(lambda: label_distance(torch.ones(3), "linf"), ValueError, "metric must be one of",
                 id="distance-bad-metric"),
]


@pytest.mark.parametrize(("run", "exc", "phrase"), HELPERS)
def test_helper_faults(run, exc, phrase):
    with pytest.raises(exc, match=phrase):
        run()


def test_knn_predict_is_finite_on_extreme_but_finite_embeddings():
    train = features(scale=1e-30).detach()
    assert torch.isfinite(knn_predict(train, targets("continuous"), train[:3], k=2)).all()
    assert knn_predict(features().detach(), targets("ranks"), features(0).detach(), k=2).shape == (0,)


def test_blackbox_rank_keeps_a_nan_upstream_gradient_visible():
    scores = torch.tensor([[0.3, 0.1, 0.2]], requires_grad=True)
    (blackbox_rank(scores) * torch.tensor([[1.0, NAN, 0.0]])).sum().backward()
    assert not torch.isfinite(scores.grad).all()
    assert math.isfinite(float(rank_normalised(torch.tensor([3, 1, 2])).sum()))
