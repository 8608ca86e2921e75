"""CPS and UCVME: each loss against a plain loop over rows, gradients to both networks and none through the
pseudo-targets, predictions against their direct computation, exact resume, the unlabelled term's effect
on a run, the datasets' presets and a tiny image run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from clss.config import resolve_config
from clss.engine import TrainingInterrupted, evaluate_run, train
from clss.methods import CPS, UCVME, Batch, NonFiniteLossError, build_method
from clss.models import MLPRegressor

D = 5
FAST = {"progress": False, "plots": False, "threads": 1, "device": "cpu"}


def model_fn(dropout=0.0, dtype=torch.float64):
    return lambda: MLPRegressor(D, (8, 8), dropout=dropout, init="default").to(dtype)


def batches(n_l=6, n_u=5, seed=0):
    """Labelled and unlabelled rows whose two views differ (each network must see its own)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, D, generator=g, dtype=torch.float64)
    x2 = x + 0.3 * torch.randn(n_l + n_u, D, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, 0]) + x[:, 1]
    lab = Batch({"weak": x[:n_l], "weak@2": x2[:n_l]}, torch.arange(n_l), y[:n_l])
    ulb = Batch({"weak": x[n_l:], "weak@2": x2[n_l:]}, torch.arange(n_l, n_l + n_u), None)
    return lab, ulb


def float32(batch):
    return Batch({k: v.float() for k, v in batch.views.items()}, batch.index,
                 None if batch.y is None else batch.y.float())


def grads(term, module):
    return torch.autograd.grad(term, list(module.parameters()), retain_graph=True, allow_unused=True)


def grad_norm(term, module):
    return sum(float(g.abs().sum()) for g in grads(term, module) if g is not None)


# ----------------------------------------------------------------------------------------------- CPS


def cps_reference(method, lab, ulb, w):
    """Σ_k mean_i (ŷ_k(x_i) − y_i)² and w Σ_k mean_j (ŷ_k(x_j) − ŷ_{1−k}(x_j))², one row at a time, network
    k on its own view."""
    nets, views = (method.model, method.model2), ("weak", "weak@2")

    def pred(k, batch, i):
        with torch.no_grad():
            return float(nets[k](batch.view(views[k])[i:i + 1])["pred"][0])

    reg = sum((pred(k, lab, i) - float(lab.y[i])) ** 2 / len(lab) for k in (0, 1) for i in range(len(lab)))
    cps = sum((pred(k, ulb, j) - pred(1 - k, ulb, j)) ** 2 / len(ulb)
              for k in (0, 1) for j in range(len(ulb)))
    return reg, w * cps


def test_cps_loss_matches_a_plain_loop_over_rows():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = CPS(model_fn(), params={"unlabeled_weight": 0.7})
    reg, cps = cps_reference(method, lab, ulb, 0.7)
    parts = method.loss_terms(lab, ulb)
    assert set(parts) == {"regression", "unlabeled_cps"}
    assert parts["regression"].item() == pytest.approx(reg, rel=1e-12)
    assert parts["unlabeled_cps"].item() == pytest.approx(cps, rel=1e-12)
    logs = method.training_step(lab, ulb, 0)  # the step logs the same values, then moves the weights
    assert logs["loss"] == pytest.approx(reg + cps, rel=1e-12)
    assert cps_reference(method, lab, ulb, 0.7)[0] != pytest.approx(reg, rel=1e-9)


def test_cps_networks_are_initialised_independently_and_both_learn():
    torch.manual_seed(0)
    method = CPS(model_fn())
    first, second = list(method.model.parameters()), list(method.model2.parameters())
    assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    opt = method.configure_optimizers()
    assert len(opt) == 1 and sum(p.numel() for g in opt[0].param_groups for p in g["params"]) == sum(
        p.numel() for p in method.parameters())
    before = [p.detach().clone() for p in method.parameters()]
    method.training_step(*batches(), 0)
    assert all(not torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))


def test_cps_gradients_reach_both_networks_and_not_through_the_pseudo_targets():
    torch.manual_seed(0)
    lab, ulb = batches()
    w = 0.5
    method = CPS(model_fn(), params={"unlabeled_weight": w})
    parts = method.loss_terms(lab, ulb)
    for term in parts.values():
        assert grad_norm(term, method.model) > 0 and grad_norm(term, method.model2) > 0
    # network 1's gradient of the cross term is that of w·MSE(ŷ_1, c) with c = network 2's prediction held
    # constant: a pseudo-target carrying gradient would add the other half of the term's gradient
    for net, other, view, other_view in ((method.model, method.model2, "weak", "weak@2"),
                                         (method.model2, method.model, "weak@2", "weak")):
        with torch.no_grad():
            target = other(ulb.view(other_view))["pred"]
        reference = w * F.mse_loss(net(ulb.view(view))["pred"], target)
        for got, want in zip(grads(parts["unlabeled_cps"], net), grads(reference, net), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_cps_predict_is_the_mean_of_both_networks_in_evaluation_mode():
    torch.manual_seed(0)
    method = CPS(model_fn(dropout=0.3))
    x = batches()[0].view("weak")
    method.model.train()
    method.model2.eval()
    got = method.predict(x)
    assert method.model.training and not method.model2.training  # modes restored
    method.model.eval()
    with torch.no_grad():
        want = torch.stack([(method.model(x[i:i + 1])["pred"] + method.model2(x[i:i + 1])["pred"])[0] / 2
                            for i in range(x.shape[0])])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_cps_labelled_contrastive_term_on_both_networks():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = CPS(model_fn(), params={"contrastive": "oe", "contrastive_weight": 0.1})
    parts = method.loss_terms(lab, ulb)
    assert grad_norm(parts["contrastive"], method.model) > 0
    assert grad_norm(parts["contrastive"], method.model2) > 0


# --------------------------------------------------------------------------------------------- UCVME


def ucvme_reference(method, lab, ulb, w):
    """The UCVME terms one row at a time (dropout off, so every Monte-Carlo pass is the same and
    ȳ, s̃ are the two networks' mean and log-variance averaged)."""
    nets, limit = (method.model, method.model2), method.params.log_var_limit

    def out(k, x, i):
        with torch.no_grad():
            feat = nets[k](x[i:i + 1])["feat"]
            s = float(method.logvar_heads[k](feat)[0, 0])
            return float(method.mean_heads[k](feat)[0, 0]), min(max(s, -limit), limit)

    def nll(m, t, s):
        return 0.5 * (math.exp(-s) * (m - t) ** 2 + s)

    reg = unc = ureg = uunc = 0.0
    x, n = lab.view("weak"), len(lab)
    for i in range(n):
        (m1, s1), (m2, s2) = out(0, x, i), out(1, x, i)
        s_bar, y = (s1 + s2) / 2, float(lab.y[i])
        reg += (nll(m1, y, s_bar) + nll(m2, y, s_bar)) / n
        unc += (s1 - s2) ** 2 / n
    x, n = ulb.view("weak"), len(ulb)
    for j in range(n):
        (m1, s1), (m2, s2) = out(0, x, j), out(1, x, j)
        y_bar, s_t = (m1 + m2) / 2, (s1 + s2) / 2
        ureg += (nll(m1, y_bar, s_t) + nll(m2, y_bar, s_t)) / n
        uunc += ((s1 - s_t) ** 2 + (s2 - s_t) ** 2) / n
    return {"regression": reg, "uncertainty": unc, "unlabeled_regression": w * ureg,
            "unlabeled_uncertainty": w * uunc}


def test_ucvme_loss_matches_a_plain_loop_over_rows():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = UCVME(model_fn(), params={"dropout": 0.0, "unlabeled_weight": 0.3, "pseudo_samples": 3})
    with torch.no_grad():  # spread the log-variances so that exp(−s) matters
        for head in method.logvar_heads:
            head.weight.mul_(4.0)
    want = ucvme_reference(method, lab, ulb, 0.3)
    parts = method.loss_terms(lab, ulb)
    assert set(parts) == set(want)
    for key, value in want.items():
        assert parts[key].item() == pytest.approx(value, rel=1e-10, abs=1e-14), key
    logs = method.training_step(lab, ulb, 0)
    assert logs["loss"] == pytest.approx(sum(want.values()), rel=1e-10)


def test_ucvme_pseudo_targets_average_every_pass_of_both_networks():
    torch.manual_seed(0)
    method = UCVME(model_fn(dropout=0.2), params={"dropout": 0.3, "pseudo_samples": 4})
    x = batches()[1].view("weak")
    b, t = x.shape[0], 4
    torch.manual_seed(5)
    y_bar, s_t = method.pseudo_targets(x)
    assert not y_bar.requires_grad and not s_t.requires_grad
    # the same random stream, consumed pass by pass: 2T passes, each with its own dropout masks
    torch.manual_seed(5)
    with torch.no_grad():
        outs = [method.outputs(k, x.repeat(t, 1))[:2] for k in (0, 1)]
    passes = [(outs[k][0][p * b:(p + 1) * b], outs[k][1][p * b:(p + 1) * b])
              for k in (0, 1) for p in range(t)]
    assert not torch.equal(passes[0][0], passes[1][0])  # independent masks per pass
    for j in range(b):
        assert float(y_bar[j]) == pytest.approx(sum(float(m[j]) for m, _ in passes) / (2 * t), rel=1e-12)
        assert float(s_t[j]) == pytest.approx(sum(float(s[j]) for _, s in passes) / (2 * t), rel=1e-12)


def test_ucvme_gradients_reach_both_networks_and_heads():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = UCVME(model_fn(dropout=0.1), params={"unlabeled_weight": 1.0})
    parts = method.loss_terms(lab, ulb)
    for key in ("regression", "uncertainty", "unlabeled_regression", "unlabeled_uncertainty"):
        for module in (method.model, method.model2):
            assert grad_norm(parts[key], module) > 0, key
    for k in (0, 1):
        assert grad_norm(parts["regression"], method.mean_heads[k]) > 0
        assert grad_norm(parts["unlabeled_uncertainty"], method.logvar_heads[k]) > 0


def test_ucvme_unlabelled_gradient_treats_the_pseudo_targets_as_constants():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = UCVME(model_fn(), params={"dropout": 0.0, "unlabeled_weight": 1.0})
    parts = method.loss_terms(lab, ulb)
    x = ulb.view("weak")
    (m1, s1, _), (m2, s2, _) = (method.outputs(k, x) for k in (0, 1))
    y_bar, s_t = ((m1 + m2) / 2).detach(), ((s1 + s2) / 2).detach()
    reference = sum(0.5 * (torch.exp(-s_t) * (m - y_bar) ** 2 + s_t).mean() + ((s - s_t) ** 2).mean()
                    for m, s in ((m1, s1), (m2, s2)))
    unlabelled = parts["unlabeled_regression"] + parts["unlabeled_uncertainty"]
    for net in (method.model, method.model2):
        for got, want in zip(grads(unlabelled, net), grads(reference, net), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_ucvme_predict_is_the_mean_of_the_dropout_samples_of_both_networks():
    torch.manual_seed(0)
    method = UCVME(model_fn(dropout=0.3), params={"dropout": 0.3, "predict_samples": 3, "seed": 7})
    x = batches()[0].view("weak")
    state = torch.get_rng_state()
    got = method.predict(x)
    assert torch.equal(torch.get_rng_state(), state)  # the training stream is untouched
    torch.testing.assert_close(method.predict(x), got, rtol=0, atol=0)  # repeatable
    assert method.model.training and method.model2.training
    method.eval()
    torch.manual_seed(7)
    with torch.no_grad():
        samples = [method.heads(k, net(x)["feat"].repeat(3, 1))[0].view(3, -1)
                   for k, net in enumerate((method.model, method.model2))]
    for j in range(x.shape[0]):
        want = sum(float(s[p, j]) for s in samples for p in range(3)) / 6
        assert float(got[j]) == pytest.approx(want, rel=1e-12)
    assert not torch.equal(samples[0][0], samples[0][1])  # the samples differ: dropout is on in predict


def test_ucvme_log_variance_is_clamped_so_the_loss_stays_finite():
    torch.manual_seed(0)
    lab, ulb = batches()
    method = UCVME(model_fn(dtype=torch.float32), params={"log_var_limit": 10.0})
    lab32, ulb32 = float32(lab), float32(ulb)
    for sign in (-1.0, 1.0):
        with torch.no_grad():
            for head in method.logvar_heads:
                head.bias.fill_(sign * 1e4)  # exp(1e4) overflows float32 without the clamp
        _, s, _ = method.outputs(0, lab32.view("weak"))
        assert torch.all(s == sign * 10.0)
        logs = method.training_step(lab32, ulb32, 0)
        assert all(math.isfinite(v) for v in logs.values())
    with torch.no_grad():  # without the clamp the same head makes the loss infinite
        assert not math.isfinite(float(torch.exp(torch.tensor(1e4, dtype=torch.float32))))


def test_ucvme_without_unlabelled_rows_needs_weight_zero():
    lab, _ = batches()
    with pytest.raises(ValueError, match="needs an unlabelled batch when unlabeled_weight > 0"):
        UCVME(model_fn()).training_step(lab, None, 0)
    logs = UCVME(model_fn(), params={"unlabeled_weight": 0.0}).training_step(lab, None, 0)
    assert set(logs) == {"loss", "regression", "uncertainty"}


# ------------------------------------------------------------------------------------- both, engine


def tiny(method, **overrides):
    return resolve_config({}, {"dataset": "diabetes", "method": method, "steps": 8, "eval_every": 4,
                               "batch_size": 12, "unlabeled_batch_size": 12, **FAST, **overrides})


@pytest.mark.parametrize("method", ["cps", "ucvme"])
def test_resume_is_exact(tmp_path, method):
    cfg = tiny(method)
    full = train(cfg, tmp_path / "full")

    def stop(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "cut", callback=stop)
    resumed = train(None, tmp_path / "cut", resume=True)
    assert resumed.summary["test"] == full.summary["test"]
    # re-evaluating the saved weights gives the same numbers (ucvme's Monte-Carlo draws are seeded)
    assert evaluate_run(tmp_path / "full")["mae"] == full.summary["test"]["mae"]
    log = "metrics.jsonl"
    assert (tmp_path / "cut" / log).read_text() == (tmp_path / "full" / log).read_text()


@pytest.mark.parametrize("method", ["cps", "ucvme"])
def test_the_unlabelled_term_changes_the_run(tmp_path, method):
    runs = {w: train(tiny(method, method_params={"unlabeled_weight": w}), tmp_path / str(w)).summary["test"]
            for w in (1.0, 1e-12, 0.0)}
    assert all(np.isfinite(r["mae"]) for r in runs.values())
    assert runs[1.0]["mae"] != pytest.approx(runs[0.0]["mae"], rel=1e-6)
    # a negligible weight draws the same random numbers as w = 1 (w = 0 skips the unlabelled forwards and
    # their dropout draws): the difference is the term's, not the random stream's
    assert runs[1.0]["mae"] != pytest.approx(runs[1e-12]["mae"], rel=1e-6)


@pytest.mark.parametrize(("method", "dataset", "expected"), [
    ("cps", "operator-sde", {"unlabeled_weight": 5e-4, "contrastive": "none"}),
    ("cps", "utkface", {"unlabeled_weight": 1.0, "contrastive": "none"}),
    ("cps", "agedb-dir", {"unlabeled_weight": 1.0, "contrastive": "none"}),
    ("ucvme", "operator-sde", {"unlabeled_weight": 5e-4, "dropout": 0.05, "pseudo_samples": 5}),
    ("ucvme", "utkface", {"unlabeled_weight": 10.0}),
    ("ucvme", "agedb-dir", {"unlabeled_weight": 10.0}),
    ("ucvme", "utkface-rankup", {"unlabeled_weight": 0.05}),
])
def test_presets(method, dataset, expected):
    cfg = resolve_config({}, {"dataset": dataset, "method": method})
    params = build_method(method, model_fn(), params=cfg.method_params).params.to_dict()
    assert {k: params[k] for k in expected} == expected
    if (method, dataset) == ("ucvme", "utkface-rankup"):
        assert cfg.unlabeled_batch_size == 32  # RankUp's UCVME config: uratio 1


@pytest.mark.parametrize("method", ["cps", "ucvme"])
def test_digits_rotation_image_run(tmp_path, method):
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": method, "labeled": "10%", "steps": 3,
                              "eval_every": 3, **FAST})
    res = train(cfg, tmp_path / "run")
    assert res.summary["status"] == "finished" and np.isfinite(res.summary["test"]["mae"])


def test_non_finite_loss_is_refused_for_both_methods():
    lab, ulb = batches()
    bad = Batch(lab.views, lab.index, torch.full_like(lab.y, float("nan")))
    for name in ("cps", "ucvme"):
        method = build_method(name, model_fn())
        before = [p.detach().clone() for p in method.parameters()]
        with pytest.raises(NonFiniteLossError, match=name):
            method.training_step(bad, ulb, 0)
        assert all(torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))


@pytest.mark.parametrize("method", ["cps", "ucvme"])
def test_bf16_forward_passes_of_both_networks(method):
    # both networks (and ucvme's pseudo-target passes) run in the method's precision; the losses in float32
    torch.manual_seed(0)
    lab, ulb = (float32(b) for b in batches())
    m = build_method(method, model_fn(dtype=torch.float32), params={"unlabeled_weight": 1.0},
                     precision="bf16")
    parts = m.loss_terms(lab, ulb)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in parts.values())
    assert all(math.isfinite(v) for v in m.training_step(lab, ulb, 0).values())
