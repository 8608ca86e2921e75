"""RankUp, RDA and RankUp + RDA: the ARC pair losses and the RDA quantile map against plain loops, the RDA
buffer's refresh steps, frozen batch norm, the EMA copy, each method's loss on a fixed batch, exact resume
through the engine and short runs showing the unlabelled terms matter."""

import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from clss.config import resolve_config
from clss.data import load_dataset
from clss.engine import TrainingInterrupted, train
from clss.engine.checkpoint import load_checkpoint
from clss.engine.predict import predict_array
from clss.methods import Batch, TrainingContext, build_method
from clss.methods.parts import (
    DistributionAlignment,
    ema_copy,
    frozen_batchnorm,
    labeled_pair_loss,
    pair_logits,
    pair_targets,
    quantile_map,
    unlabeled_pair_loss,
)
from clss.models import MLPRegressor

METHOD_NAMES = ("rankup", "rda", "rankup_rda")


def batches(n_l=8, n_u=10, d=6, seed=0):
    """A labelled and an unlabelled batch (rows 0..n_l-1 and n_l..n_l+n_u-1); the strong view is a noisy
    copy of the weak one, as an augmentation would give."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, d, generator=g, dtype=torch.float64)
    y = x[:, 0] + 0.5 * x[:, 1]
    strong = x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    lab = Batch({"weak": x[:n_l]}, torch.arange(n_l), y[:n_l])
    ulb = Batch({"weak": x[n_l:], "strong": strong[n_l:]}, torch.arange(n_l, n_l + n_u), None)
    return lab, ulb


def model_fn():
    return MLPRegressor(6, (16, 16), dropout=0.0, init="default").double()


def context(n_l=8, n_u=10, total=100, seed=0):
    lab, _ = batches(n_l, n_u, seed=seed)
    return TrainingContext(total_steps=total, train_size=n_l + n_u, labeled_y=lab.y,
                           unlabeled_index=torch.arange(n_l, n_l + n_u))


def built(name, **params):
    torch.manual_seed(0)
    method = build_method(name, model_fn, params=params)
    method.setup(context())
    return method


# ----------------------------------------------------------------------------------------------------------
# ARC pieces against loops over pairs


def test_pair_logits_and_targets_match_double_loops():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(5, 2, generator=g, dtype=torch.float64)
    y = torch.tensor([0.3, -1.0, 0.3, 2.0, -0.5], dtype=torch.float64)  # a tie between rows 0 and 2
    z, t = pair_logits(scores), pair_targets(y)
    assert z.shape == t.shape == (5, 5, 2)
    for i in range(5):
        for j in range(5):
            for c in range(2):
                assert float(z[i, j, c]) == pytest.approx(float(scores[j, c] - scores[i, c]), abs=1e-15)
            above = 1.0 if y[j] > y[i] else 0.5 if y[j] == y[i] else 0.0
            assert (float(t[i, j, 0]), float(t[i, j, 1])) == (above, 1.0 - above)


def _log_softmax(a, b):
    m = max(a, b)
    lse = m + math.log(math.exp(a - m) + math.exp(b - m))
    return a - lse, b - lse


def test_labeled_pair_loss_matches_a_loop_over_pairs():
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(6, generator=g, dtype=torch.float64)
    total = 0.0
    for i in range(6):
        for j in range(6):
            l0, l1 = _log_softmax(float(scores[j, 0] - scores[i, 0]), float(scores[j, 1] - scores[i, 1]))
            above = 1.0 if y[j] > y[i] else 0.5 if y[j] == y[i] else 0.0
            total += -(above * l0 + (1 - above) * l1)
    got = labeled_pair_loss(pair_logits(scores), pair_targets(y))
    assert float(got) == pytest.approx(total / 36, rel=1e-12)


def test_unlabeled_pair_loss_matches_a_loop_and_stops_the_weak_gradient():
    g = torch.Generator().manual_seed(3)
    weak = 4.0 * torch.randn(7, 2, generator=g, dtype=torch.float64)
    strong = torch.randn(7, 2, generator=g, dtype=torch.float64)
    cutoff = 0.9
    total, used = 0.0, 0
    for i in range(7):
        for j in range(7):
            w0, w1 = float(weak[j, 0] - weak[i, 0]), float(weak[j, 1] - weak[i, 1])
            p0 = 1.0 / (1.0 + math.exp(w1 - w0))
            label, confidence = (0, p0) if p0 >= 1 - p0 else (1, 1 - p0)
            if confidence >= cutoff:
                used += 1
                s = _log_softmax(float(strong[j, 0] - strong[i, 0]), float(strong[j, 1] - strong[i, 1]))
                total += -s[label]
    weak_scores, strong_scores = weak.clone().requires_grad_(True), strong.clone().requires_grad_(True)
    loss, mask = unlabeled_pair_loss(pair_logits(weak_scores), pair_logits(strong_scores), cutoff)
    assert 0 < used < 49  # the case mixes confident and unconfident pairs
    assert int(mask.sum()) == used and mask.shape == (7, 7) and float(mask.diagonal().sum()) == 0
    assert float(loss.detach()) == pytest.approx(total / 49, rel=1e-12)
    loss.backward()
    assert weak_scores.grad is None and float(strong_scores.grad.abs().sum()) > 0


# ----------------------------------------------------------------------------------------------------------
# RDA: the quantile map and the buffer


def _quantile_map_loop(values, targets):
    """The map from its definition: the k-th smallest value gets the sorted targets interpolated at
    position k (m - 1) / (n - 1)."""
    n, m = len(values), len(targets)
    s = sorted(targets)
    order = sorted(range(n), key=lambda i: (values[i], i))
    out = [0.0] * n
    for k, row in enumerate(order):
        pos = 0.0 if n == 1 else k * (m - 1) / (n - 1)
        lo = min(math.floor(pos), m - 1)
        hi = min(lo + 1, m - 1)
        out[row] = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return out


@pytest.mark.parametrize(("n", "m"), [(9, 4), (4, 9), (5, 5), (1, 3), (6, 1), (2, 2)])
def test_quantile_map_matches_a_sorted_loop(n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    values = torch.randn(n, generator=g, dtype=torch.float64)
    if n > 3:
        values[1] = values[3]  # a tie keeps index order
    targets = 3.0 * torch.randn(m, generator=g, dtype=torch.float64) + 1.0
    got = quantile_map(values, targets)
    expected = _quantile_map_loop(values.tolist(), targets.tolist())
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # the official code's np.interp on two linspace grids, assigned through argsort
    ref = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, m), np.sort(targets.numpy()))
    official = np.empty(n)
    official[np.argsort(values.numpy(), kind="stable")] = ref
    assert got.numpy() == pytest.approx(official, rel=1e-12, abs=1e-12)


def test_rda_buffer_refreshes_at_exactly_every_refine_every_steps():
    unlabeled = torch.tensor([11, 3, 7, 20, 5])
    rda = DistributionAlignment(unlabeled, torch.tensor([0.0, 1.0, 2.0, 10.0]), refine_every=3)
    g = torch.Generator().manual_seed(0)
    refreshed = []
    for step in range(10):
        before = rda.refined.clone()
        rows = unlabeled[torch.randperm(5, generator=g)[:3]]
        pred = torch.randn(3, generator=g)
        got = rda.update(rows, pred, step)
        position = torch.searchsorted(torch.sort(unlabeled).values, rows)
        assert torch.equal(rda.raw[position], pred)  # the latest predictions are stored
        if not torch.equal(rda.refined, before):
            refreshed.append(step)
            assert torch.equal(rda.refined, quantile_map(rda.raw, rda.labeled_y))
        assert torch.equal(got, rda.refined[position])  # the lookup is the current pseudo-label
    assert refreshed == [0, 3, 6, 9]


def test_rda_term_starts_at_rda_start_and_ramps_linearly():
    method = built("rda", refine_every=2, rda_start=3, warmup=0.5, ema=0.0)  # ramp over 50 of 100 steps
    lab, ulb = batches()
    logs = [method.training_step(lab, ulb, step) for step in range(6)]
    assert [("unlabeled_rda" in x) for x in logs] == [False, False, False, True, True, True]
    # step 6 refreshes; the batch holds every unlabelled row, so the buffer is this step's predictions and
    # the pseudo-labels are their quantile map onto the labelled targets
    with torch.no_grad():
        pred = method.model(ulb.view("weak"))["pred"]
    pseudo = torch.tensor(_quantile_map_loop(pred.tolist(), lab.y.tolist()), dtype=torch.float64)
    out = method.training_step(lab, ulb, 6)
    assert out["unlabeled_rda"] == pytest.approx(6 / 50 * float(((pred - pseudo) ** 2).mean()), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------
# Frozen batch norm and the EMA copy


def test_frozen_batchnorm_normalises_with_the_batch_and_keeps_running_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    x = torch.randn(16, 3) * 5 + 2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with frozen_batchnorm(net):
        y = net(x)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    h = net[0](x)
    expected = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(y, expected * net[1].weight + net[1].bias, atol=1e-5)
    net(x)  # outside the block the statistics move again
    assert not torch.equal(before["1.running_mean"], net.state_dict()["1.running_mean"])


class BatchNormNet(nn.Module):
    """A small regressor with batch norm, returning the models' ``{"pred", "feat"}``."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        feat = self.body(x)
        return {"pred": self.head(feat).squeeze(-1), "feat": feat}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_unlabelled_weak_view_leaves_the_running_statistics_alone(name):
    # the running statistics after a step are those of the labelled (and strong) forwards only
    torch.manual_seed(0)
    method = build_method(name, lambda: BatchNormNet().double(), params={"ema": 0.0})
    method.setup(context())
    lab, ulb = batches()
    reference = BatchNormNet().double()
    reference.load_state_dict(method.model.state_dict())
    reference.train()
    with torch.no_grad():
        reference(lab.view("weak"))
        if name != "rda":
            reference(ulb.view("strong"))
    method.training_step(lab, ulb, 0)
    bn, ref = method.model.body[1], reference.body[1]
    assert torch.allclose(bn.running_mean, ref.running_mean, rtol=1e-12, atol=1e-14)
    assert torch.allclose(bn.running_var, ref.running_var, rtol=1e-12, atol=1e-14)
    assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_ema_copy_moves_by_the_decay_and_predicts(name):
    method = built(name, ema=0.9)
    lab, ulb = batches()
    teacher = [p.clone() for p in method.ema_model.parameters()]
    method.training_step(lab, ulb, 0)
    for t0, t, s in zip(teacher, method.ema_model.parameters(), method.model.parameters(), strict=True):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * s, rtol=1e-12, atol=1e-14)
    x = lab.view("weak")
    assert torch.equal(method.predict(x), method.ema_model.eval()(x)["pred"])
    assert not torch.equal(method.predict(x), method.model.eval()(x)["pred"])
    assert any(k.startswith("ema_model.") for k in method.state_dict())
    off = built(name, ema=0.0)
    assert off.ema_model is None and torch.equal(off.predict(x), off.model.eval()(x)["pred"])


def test_ema_copy_is_frozen():
    model = model_fn()
    copy = ema_copy(model)
    assert all(not p.requires_grad for p in copy.parameters())
    assert all(torch.equal(a, b) for a, b in zip(copy.parameters(), model.parameters(), strict=True))


# ----------------------------------------------------------------------------------------------------------
# Each method's loss on a fixed batch, from the parts' loop references


def _arc_terms(method, lab, ulb):
    """RankUp's labelled and unlabelled ARC losses recomputed with loops from the current weights."""
    p = method.params
    with torch.no_grad():
        a_l = method.arc(method.model(lab.view("weak"))["feat"]).tolist()
        a_w = method.arc(method.model(ulb.view("weak"))["feat"]).tolist()
        a_s = method.arc(method.model(ulb.view("strong"))["feat"]).tolist()
    y = lab.y.tolist()
    sup = 0.0
    for i in range(len(y)):
        for j in range(len(y)):
            l0, l1 = _log_softmax(a_l[j][0] - a_l[i][0], a_l[j][1] - a_l[i][1])
            above = 1.0 if y[j] > y[i] else 0.5 if y[j] == y[i] else 0.0
            sup -= above * l0 + (1 - above) * l1
    unsup, n = 0.0, len(a_w)
    for i in range(n):
        for j in range(n):
            p0 = 1.0 / (1.0 + math.exp((a_w[j][1] - a_w[i][1]) - (a_w[j][0] - a_w[i][0])))
            label = 0 if p0 >= 0.5 else 1
            if max(p0, 1 - p0) >= p.p_cutoff:
                unsup -= _log_softmax(a_s[j][0] - a_s[i][0], a_s[j][1] - a_s[i][1])[label]
    return sup / len(y) ** 2, unsup / n ** 2


@pytest.mark.parametrize("name", ["rankup", "rankup_rda"])
def test_rankup_loss_on_a_fixed_batch_matches_loops(name):
    method = built(name, p_cutoff=0.6, ema=0.0, rda_start=10 ** 6) if name == "rankup_rda" else \
        built(name, p_cutoff=0.6, ema=0.0)
    lab, ulb = batches()
    with torch.no_grad():
        reg = float((method.model(lab.view("weak"))["pred"] - lab.y).abs().mean())  # L1 by default
    sup, unsup = _arc_terms(method, lab, ulb)
    out = method.training_step(lab, ulb, 0)
    assert out["regression"] == pytest.approx(reg, rel=1e-10)
    assert out["arc"] == pytest.approx(0.2 * sup, rel=1e-10)
    assert out["unlabeled_arc"] == pytest.approx(0.2 * unsup, rel=1e-10) and unsup > 0
    assert out["loss"] == pytest.approx(reg + 0.2 * sup + 0.2 * unsup, rel=1e-10)  # no constant added


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_loss_term_reaches_the_weights(name):
    # a confident start (p_cutoff low) so that the unlabelled pair term is on from the first step
    params = {"rankup": {"p_cutoff": 0.5}, "rda": {"rda_start": 0, "refine_every": 1},
              "rankup_rda": {"p_cutoff": 0.5, "rda_start": 0, "refine_every": 1}}[name]
    method = built(name, ema=0.0, **params)
    lab, ulb = batches()
    captured = {}
    method.optimize = lambda loss, parts, optimizer=None: captured.update(parts) or {}
    method.training_step(lab, ulb, 50)
    expected = {"rankup": {"regression", "arc", "unlabeled_arc"}, "rda": {"regression", "unlabeled_rda"},
                "rankup_rda": {"regression", "unlabeled_rda", "arc", "unlabeled_arc"}}[name]
    assert set(captured) == expected
    trained = [*method.model.parameters(), *getattr(method, "arc", nn.Linear(1, 1)).parameters()]
    for term, value in captured.items():
        grads = torch.autograd.grad(value, trained, allow_unused=True, retain_graph=True)
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, term


@pytest.mark.parametrize(("name", "off"), [
    ("rankup", {"arc_ulb_loss_ratio": 0.0}),
    ("rda", {"rda_weight": 0.0}),
    ("rankup_rda", {"arc_ulb_loss_ratio": 0.0, "rda_weight": 0.0}),
])
def test_unlabelled_terms_change_the_trained_model(name, off):
    common = {"p_cutoff": 0.6, "ema": 0.0} if name != "rda" else {"ema": 0.0}
    if name != "rankup":
        common |= {"refine_every": 2, "rda_start": 2, "warmup": 0.0}
    lab, ulb = batches()
    x = torch.cat([lab.view("weak"), ulb.view("weak")])
    preds = []
    for params in (common, common | off):
        method = built(name, **params)
        for step in range(10):
            method.training_step(lab, ulb, step)
        preds.append(method.predict(x))
    assert (preds[0] - preds[1]).abs().max() > 1e-4


# ----------------------------------------------------------------------------------------------------------
# The engine: exact resume (RDA buffer included), presets, image runs


def _tiny(method, **overrides):
    params = {"refine_every": 3, "rda_start": 3, "ema": 0.9} if method != "rankup" else {"ema": 0.9}
    return resolve_config({}, {"dataset": "diabetes", "method": method, "steps": 12, "eval_every": 6,
                               "progress": False, "threads": 1, "batch_size": 12, "unlabeled_batch_size": 12,
                               "method_params": params | {"p_cutoff": 0.6} if method != "rda" else params,
                               **overrides})


@pytest.mark.slow
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_resume_is_exact_including_the_rda_buffer(tmp_path, name):
    full = train(_tiny(name), tmp_path / "full")

    def interrupt(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(_tiny(name), tmp_path / "cut", callback=interrupt)
    resumed = train({}, tmp_path / "cut", resume=True)
    logs = [[json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            for run in (full.run_dir, resumed.run_dir)]
    assert [r["step"] for r in logs[1]] == list(range(1, 13))
    for a, b in zip(*logs, strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    a, b = (load_checkpoint(run / "last.pt")["method"] for run in (full.run_dir, resumed.run_dir))
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
    if name != "rankup":
        buffers = [state["_extra_state"]["rda"] for state in (a, b)]
        assert torch.equal(buffers[0]["raw"], buffers[1]["raw"])
        assert torch.equal(buffers[0]["refined"], buffers[1]["refined"])
        assert float(buffers[0]["raw"].abs().sum()) > 0
    # a predictor (built without setup, so without the buffer) reproduces the run's test predictions,
    # which come from the EMA copy
    rows = (full.run_dir / "predictions.csv").read_text().splitlines()[1:]
    expected = np.array([float(r.split(",")[4]) for r in rows if r.startswith("test")])
    got = predict_array(full.run_dir, load_dataset("diabetes", seed=0).x_test)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_state_dict_resume_mid_run_is_exact(name):
    """2k steps equal k steps, a weights-only save and load into a fresh method, and k more (the RDA buffer
    travels in the extra state)."""
    params = {"p_cutoff": 0.6, "ema": 0.9} | ({} if name == "rankup" else {"refine_every": 3, "rda_start": 2})
    if name == "rda":
        params.pop("p_cutoff")
    lab, ulb = batches()
    whole = built(name, **params)
    logs_whole = [whole.training_step(lab, ulb, step) for step in range(8)]
    first = built(name, **params)
    logs = [first.training_step(lab, ulb, step) for step in range(4)]
    buffer = io.BytesIO()
    optimizer = first.configure_optimizers()[0]
    torch.save({"method": first.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    second = build_method(name, model_fn, params=params)
    second.setup(context())
    second.load_state_dict(state["method"])
    second.configure_optimizers()[0].load_state_dict(state["optimizer"])
    logs += [second.training_step(lab, ulb, step) for step in range(4, 8)]
    assert logs == logs_whole
    for key, value in whole.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, second.state_dict()[key]), key
    if name != "rankup":
        assert torch.equal(whole.alignment.raw, second.alignment.raw)
        assert torch.equal(whole.alignment.refined, second.alignment.refined)
        assert float(whole.alignment.refined.abs().sum()) > 0


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_presets_pin_the_published_utkface_settings(name):
    cfg = resolve_config({}, {"dataset": "utkface-rankup", "method": name})
    params = cfg.method_params
    if name != "rda":
        arc = (params["arc_loss_ratio"], params["arc_ulb_loss_ratio"], params["p_cutoff"])
        assert arc == (0.2, 1.0, 0.95)
    if name != "rankup":
        assert (params["rda_weight"], params["warmup"], params["refine_every"], params["rda_start"]) == \
            (1.0, 0.4, 1024, 1024)
    assert params["ema"] == 0.999 and params["regression_loss"] == "l1"
    assert build_method(name, model_fn, params=params).params.to_dict() == \
        build_method(name, model_fn).params.to_dict()  # the defaults are that configuration


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_operator_sde_and_digits_presets_resolve_and_build(name):
    # the operator-sde preset's labelled contrastive settings are accepted and stay off (contrastive "none")
    cfg = resolve_config({}, {"dataset": "operator-sde", "method": name})
    method = build_method(name, model_fn, params=cfg.method_params)
    assert method.params.contrastive == "none" and method.labeled_contrastive is None
    digits = resolve_config({}, {"dataset": "digits-rotation", "method": name}).method_params
    assert digits["ema"] == 0.99
    assert name == "rankup" or (digits["refine_every"], digits["rda_start"]) == (50, 50)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_optional_labelled_contrastive_term(name):
    method = built(name, contrastive="oe", contrastive_weight=0.5, ema=0.0)
    lab, ulb = batches()
    out = method.training_step(lab, ulb, 0)
    assert out["contrastive"] != 0  # Ordinal Entropy may be negative
    assert out["loss"] == pytest.approx(sum(v for k, v in out.items() if k not in ("loss", "mask")), rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_tiny_image_run_on_digits_rotation(tmp_path, name):
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": name, "steps": 6, "eval_every": 3,
                              "progress": False, "threads": 1, "batch_size": 8, "unlabeled_batch_size": 8,
                              "model": {"name": "cnn", "channels": 8, "blocks": 1, "dropout": 0.1}})
    result = train(cfg, tmp_path / "run")
    assert result.summary["status"] == "finished"
    assert math.isfinite(result.summary["test"]["mae"])
    logs = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(logs) == 6 and all(math.isfinite(r["loss"]) for r in logs)
