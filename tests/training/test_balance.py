"""The split gradient behind ``unlabeled_weight="auto"`` and the gradient probe: the split backward gives the
ordinary gradient, the probe's norms, ratio and cosine equal a direct computation over flattened gradients,
the automatic weight follows its moving-average formula and ramp, resumes exactly, and is refused where it
cannot apply."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from clss.config import TrainConfig
from clss.engine import TrainingInterrupted, train
from clss.methods import METHODS, Batch, OptimizerConfig, TrainingContext, build_method
from clss.methods.balance import NORM_DECAY, GradientBalance, is_unlabeled_term
from clss.models import MLPRegressor

SGD = OptimizerConfig(name="sgd", lr=0.05, weight_decay=0.0, momentum=0.0)
D = 5
AUTO_METHODS = sorted(name for name, cls in METHODS.items() if "unlabeled_weight" in cls.Params().to_dict()
                      and "auto_ratio" in cls.Params().to_dict())


def model_fn():
    torch.manual_seed(0)
    return MLPRegressor(D, (8, 8), dropout=0.1, init="default").double()


def build(name, params=None, total=20, labeled_y=None):
    method = build_method(name, model_fn, SGD, {"seed": 3, **(params or {})})
    labeled_y = torch.zeros(8, dtype=torch.float64) if labeled_y is None else labeled_y
    method.setup(TrainingContext(total_steps=total, train_size=40, labeled_y=labeled_y,
                                 unlabeled_index=torch.arange(8, 20)))
    return method


def batches(seed=0, n_l=8, n_u=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, D, generator=g, dtype=torch.float64)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * x[:, 2] ** 2
    xu = x[n_l:]
    views = {"weak": xu, "weak@2": xu + 0.1 * torch.randn(xu.shape, generator=g, dtype=torch.float64),
             "strong": xu + 0.3 * torch.randn(xu.shape, generator=g, dtype=torch.float64)}
    labeled = Batch({"weak": x[:n_l], "weak@2": x[:n_l]}, torch.arange(n_l), y[:n_l])
    return labeled, Batch(views, torch.arange(n_l, n_l + n_u), y[n_l:])


class Recorder:
    """Wraps a method's ``optimize`` to keep, for each call and before the step changes the weights, the
    loss terms' names, the parameters and a direct computation of the gradients: ``g_s`` and ``g_u`` (the
    supervised and ``unlabeled_*`` sums) and each term's own, flattened over the optimiser's parameters."""

    def __init__(self, method):
        self.calls = []
        inner = method.optimize

        def optimize(loss, parts, optimizer=None):
            opt = optimizer or method.configure_optimizers()[0]
            params = [p for g in opt.param_groups for p in g["params"]]
            self.calls.append({
                "keys": list(parts), "before": [p.detach().clone() for p in params],
                "g_s": flat_grad([v for k, v in parts.items() if not is_unlabeled_term(k)], params),
                "g_u": flat_grad([v for k, v in parts.items() if is_unlabeled_term(k)], params),
                "terms": {k: flat_grad([v], params) for k, v in parts.items()}})
            return inner(loss, parts, optimizer)

        method.optimize = optimize


def flat_grad(terms, params):
    """The gradient of ``sum(terms)`` over ``params`` as one numpy vector (zeros where not reached)."""
    live = [t for t in terms if t.requires_grad]
    if not live:
        return np.zeros(sum(p.numel() for p in params))
    grads = torch.autograd.grad(sum(live), params, retain_graph=True, allow_unused=True)
    return np.concatenate([(torch.zeros_like(p) if g is None else g).detach().reshape(-1).numpy()
                           for p, g in zip(params, grads, strict=True)])


@pytest.mark.parametrize("name", ["gclss", "clss", "pimodel", "meanteacher", "rda", "rankup", "ucvme"])
def test_probe_steps_take_the_ordinary_step(name):
    """A probe step splits the backward; the parameters after it equal those after an ordinary step."""
    lab, ulb = batches()
    plain, probed = build(name), build(name)
    probed.probe_gradients = True
    for step in range(3):
        torch.manual_seed(step)  # the same dropout masks in both
        plain.training_step(lab, ulb, step)
        torch.manual_seed(step)
        logs = probed.training_step(lab, ulb, step)
        assert "grad_ratio" in logs and "grad_cosine" in logs
    for a, b in zip(plain.state_dict().values(), probed.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * max(1.0, float(a.abs().max())))


@pytest.mark.parametrize("name", ["gclss", "pimodel", "cps"])
def test_probe_values_equal_a_direct_computation(name):
    lab, ulb = batches(1)
    method = build(name, {"unlabeled_weight": 0.3, **({"ramp_up": 0.0} if name == "pimodel" else {})})
    rec = Recorder(method)
    method.probe_gradients = True
    logs = method.training_step(lab, ulb, 0)
    call = rec.calls[0]
    g_s, g_u = call["g_s"], call["g_u"]
    assert np.linalg.norm(g_u) > 0
    for key, grad in call["terms"].items():
        assert logs[f"grad_{key}"] == pytest.approx(np.linalg.norm(grad), rel=1e-9)
    assert logs["grad_ratio"] == pytest.approx(np.linalg.norm(g_u) / np.linalg.norm(g_s), rel=1e-9)
    cosine = g_s @ g_u / (np.linalg.norm(g_s) * np.linalg.norm(g_u))
    assert logs["grad_cosine"] == pytest.approx(cosine, rel=1e-9, abs=1e-12)


def test_balance_follows_its_moving_average():
    """Reference: the two averages written out as a loop, started at the first non-zero measurement."""
    rng = np.random.default_rng(0)
    sup, unl = rng.uniform(0.1, 2, 30), rng.uniform(0.01, 1, 30)
    unl[[0, 7]] = 0.0  # steps without an unlabelled gradient leave the averages alone
    balance = GradientBalance(0.4)
    a = b = None
    for s, u in zip(sup, unl, strict=True):
        got = balance.update(float(s), float(u))
        if u > 0:
            a, b = (s, u) if a is None else (NORM_DECAY * a + (1 - NORM_DECAY) * s,
                                             NORM_DECAY * b + (1 - NORM_DECAY) * u)
        assert got == (0.0 if a is None else pytest.approx(0.4 * a / b, rel=1e-12))
    restored = GradientBalance(0.4)
    restored.load_state_dict(balance.state_dict())
    assert restored.update(1.0, 0.5) == balance.update(1.0, 0.5)
    with pytest.raises(ValueError, match="positive"):
        GradientBalance(0.0)


@pytest.mark.parametrize("name", ["gclss", "pimodel", "ucvme"])
def test_auto_weight_sets_the_gradient_ratio(name):
    """At the first step the averages are the step's own norms: the unlabelled gradient applied is exactly
    ``ratio × ramp`` times the supervised one, and the step is SGD on ``g_s + w g_u``."""
    lab, ulb = batches(2)
    extra = {"ramp_up": 0.5} if name == "pimodel" else {}
    method = build(name, {"unlabeled_weight": "auto", "auto_ratio": 0.25, **extra}, total=20)
    rec = Recorder(method)
    method.probe_gradients = True
    step = 4  # pimodel: ramp 4 / 10
    logs = method.training_step(lab, ulb, step)
    ramp = 0.4 if name == "pimodel" else 1.0
    assert logs["grad_ratio"] == pytest.approx(0.25 * ramp, rel=1e-9)
    call = rec.calls[0]
    g_s, g_u, before = call["g_s"], call["g_u"], call["before"]
    params = [p for g in method.optimizers[0].param_groups for p in g["params"]]
    w = 0.25 * ramp * np.linalg.norm(g_s) / np.linalg.norm(g_u)
    assert logs["unlabeled_weight"] == pytest.approx(w, rel=1e-9)
    after = np.concatenate([p.detach().reshape(-1).numpy() for p in params])
    start = np.concatenate([p.reshape(-1).numpy() for p in before])
    np.testing.assert_allclose(after, start - SGD.lr * (g_s + w * g_u), rtol=1e-9,
                               atol=1e-12 * np.abs(start).max())


def test_auto_weight_is_zero_before_the_ramp():
    lab, ulb = batches(3)
    auto = build("meanteacher", {"unlabeled_weight": "auto"})
    zero = build("meanteacher", {"unlabeled_weight": 0.0})
    torch.manual_seed(0)
    assert auto.training_step(lab, ulb, 0)["unlabeled_weight"] == 0.0
    torch.manual_seed(0)
    zero.training_step(lab, ulb, 0)
    for a, b in zip(auto.model.parameters(), zero.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_auto_methods_are_the_ones_with_an_unlabelled_weight():
    assert set(AUTO_METHODS) == {"clss", "gclss", "pimodel", "meanteacher", "mixmatch", "cps", "ucvme"}
    for name in AUTO_METHODS:
        assert build(name, {"unlabeled_weight": "auto"}).balance is not None
        assert build(name).balance is None
    with pytest.raises(ValueError, match="unlabeled_weight must be a float >= 0 or 'auto', got 'often'"):
        build("gclss", {"unlabeled_weight": "often"})
    with pytest.raises(ValueError, match="auto_ratio"):
        build("pimodel", {"unlabeled_weight": "auto", "auto_ratio": 0})
    with pytest.raises(ValueError, match="fp16"):
        build_method("cps", model_fn, SGD, {"unlabeled_weight": "auto"}, precision="fp16")


def test_auto_weight_resumes_exactly(tmp_path):
    """Through the engine: a run interrupted and resumed ends with the same weights, logged auto weights
    and probe values as one run straight through (the averages are part of the checkpoint)."""
    cfg = dict(dataset="diabetes", method="gclss", labeled="20%", steps=12, eval_every=4, probe_every=3,
               method_params={"unlabeled_weight": "auto", "rank_rows": 8}, unlabeled_batch_size=16,
               batch_size=16, progress=False, plots=False, seed=1)
    train(TrainConfig(**cfg), tmp_path / "full")

    def stop(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(**cfg), tmp_path / "part", callback=stop)
    train(None, tmp_path / "part", resume=True)

    def log(path):
        return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]

    full, part = log(tmp_path / "full"), log(tmp_path / "part")
    assert [r["step"] for r in full] == [r["step"] for r in part]
    for a, b in zip(full, part, strict=True):
        for key in ("unlabeled_weight", "loss", "grad_ratio"):
            if key in a:
                assert math.isclose(a[key], b[key], rel_tol=1e-9), (a["step"], key)
    assert sum("grad_ratio" in r for r in full) == 4  # steps 1, 4, 7, 10 (0-based 0, 3, 6, 9)


def test_unlabelled_terms_follow_the_key_convention():
    """Every semi-supervised method's unlabelled terms are keyed ``unlabeled_*``; its supervised ones are
    not (the split and the balance rely on it)."""
    lab, ulb = batches(4)
    # the representation recipes' two views
    lab.views.update(strong=lab.views["weak@2"], **{"strong@2": lab.views["weak"]})
    ulb.views["strong@2"] = ulb.views["weak@2"]
    for name, cls in METHODS.items():
        if not cls.semi_supervised:
            continue
        defaults = cls.Params().to_dict()
        recipe = "pseudo_targets" in defaults  # the seed papers' recipes: their own loss, weight 0 by default
        method = build(name, {"unlabeled_weight": 1.0} if recipe else
                       {k: 0 for k in ("ramp_up", "warmup", "rda_start") if k in defaults},
                       labeled_y=lab.y if recipe else None)  # binned recipes need distinct targets
        rec = Recorder(method)
        method.training_step(lab, ulb, 3)
        keys = set(rec.calls[0]["keys"])
        assert any(map(is_unlabeled_term, keys)), (name, keys)
        supervised = keys - {k for k in keys if is_unlabeled_term(k)}
        assert supervised and (recipe or "regression" in supervised), (name, keys)


def test_auto_weight_with_a_deep_copy():
    """A copied method keeps its own balance (the copy is how prediction-only models are made)."""
    method = build("clss", {"unlabeled_weight": "auto"})
    lab, ulb = batches(5)
    method.training_step(lab, ulb, 0)
    clone = copy.deepcopy(method)
    assert clone.balance is not method.balance and clone.balance.state_dict() == method.balance.state_dict()


@pytest.mark.parametrize("name", ["clss", "gclss"])
def test_auto_puts_the_larger_ranking_weight_at_one(name):
    """Under "auto" the blackbox ranking terms enter the loss with the larger of their two weights at 1 (the
    same terms as the multiplier 1 / max), so the rank operator sees a unit-scale incoming gradient."""
    lab, ulb = batches(6)
    weights = {"rank_weight": 1e-3, "consistency_weight": 5e-4}
    auto = build(name, {**weights, "unlabeled_weight": "auto"})
    fixed = build(name, {**weights, "unlabeled_weight": 1000.0})
    logs = []
    for method in (auto, fixed):
        torch.manual_seed(0)
        logs.append(method.training_step(lab, ulb, 0))
    for key in ("unlabeled_rank", "unlabeled_consistency"):
        if key in logs[1]:
            assert logs[0][key] == pytest.approx(logs[1][key], rel=1e-12)
    assert logs[1]["unlabeled_rank"] > 0
