"""Π-model, Mean Teacher and MixMatch: each step against a plain-loop reference written from the math (losses
and the SGD update they give), ramp-up and EMA against direct computations, the Mean Teacher term's gradient,
the noise warning, exact resume through the engine, the unlabelled term's effect, and image runs."""

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from clss.config import resolve_config
from clss.data import InputSpec
from clss.engine import TrainingInterrupted, evaluate_run, train
from clss.engine.checkpoint import load_checkpoint
from clss.methods import Batch, OptimizerConfig, TrainingContext, build_method
from clss.methods.parts import beta_draw, input_noise, mixup
from clss.models import MLPRegressor, build_model

SGD = OptimizerConfig(name="sgd", lr=0.1, weight_decay=0.0, momentum=0.0)
D = 5


def model_fn(dropout=0.0, seed=0):
    def make():
        torch.manual_seed(seed)
        return MLPRegressor(D, (8, 8), dropout=dropout, init="default").double()
    return make


def build(name, params=None, *, dropout=0.0, total=10, optimizer=SGD):
    method = build_method(name, model_fn(dropout), optimizer, {"unlabeled_weight": 0.7, **(params or {})})
    method.setup(TrainingContext(total_steps=total, train_size=40,
                                 labeled_y=torch.zeros(6, dtype=torch.float64),
                                 unlabeled_index=torch.arange(6, 16)))
    return method


def data(seed=0, n_l=6, n_u=7):
    """A labelled batch and an unlabelled one whose views differ (as augmented images' would)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, D, generator=g, dtype=torch.float64)
    y = x[:, 0] - 0.5 * x[:, 1]
    xu = x[n_l:]
    views = {"weak": xu, "weak@2": xu + 0.1 * torch.randn(xu.shape, generator=g, dtype=torch.float64),
             "strong": xu + 0.3 * torch.randn(xu.shape, generator=g, dtype=torch.float64)}
    return Batch({"weak": x[:n_l]}, torch.arange(n_l), y[:n_l]), Batch(views, torch.arange(n_l, n_l + n_u))


def f(net, row):
    """The network's prediction for one row (the references loop over rows)."""
    return net(row[None])["pred"][0]


def ramp(step, total, fraction=0.4):
    return min(1.0, step / (fraction * total))


def check_sgd_step(before, after, loss):
    """``after`` = ``before`` − lr · ∇loss (the reference loss's gradient w.r.t. ``before``'s parameters)."""
    params = list(before.parameters())
    grads = torch.autograd.grad(loss, params)
    for p0, g, p1 in zip(params, grads, after.parameters(), strict=True):
        torch.testing.assert_close(p1.detach(), p0.detach() - SGD.lr * g, rtol=1e-10, atol=1e-12)


def test_pimodel_step_matches_the_plain_loop_reference():
    method = build("pimodel")
    lab, ulb = data()
    net, step = copy.deepcopy(method.model), 3
    logs = method.training_step(lab, ulb, step)
    sup = sum((f(net, lab.views["weak"][i]) - lab.y[i]) ** 2 for i in range(len(lab))) / len(lab)
    cons = sum((f(net, ulb.views["weak@2"][i]) - f(net, ulb.views["weak"][i]).detach()) ** 2
               for i in range(len(ulb))) / len(ulb)
    w = 0.7 * ramp(step, 10)
    assert logs["ramp"] == pytest.approx(0.75, rel=1e-12)
    assert logs["regression"] == pytest.approx(float(sup.detach()), rel=1e-10)
    assert logs["unlabeled_consistency"] == pytest.approx(w * float(cons.detach()), rel=1e-10)
    assert float(cons.detach()) > 1e-6
    check_sgd_step(net, method.model, sup + w * cons)  # no gradient through the first (target) pass


def test_meanteacher_step_matches_the_plain_loop_reference():
    method = build("meanteacher", {"ema_decay": 0.99})
    with torch.no_grad():  # a teacher distinct from the student, as after some training
        for i, p in enumerate(method.teacher.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=p.dtype))
    lab, ulb = data()
    net, teacher, step = copy.deepcopy(method.model), copy.deepcopy(method.teacher), 3
    logs = method.training_step(lab, ulb, step)
    sup = sum((f(net, lab.views["weak"][i]) - lab.y[i]) ** 2 for i in range(len(lab))) / len(lab)
    with torch.no_grad():
        targets = [f(teacher, ulb.views["weak"][i]) for i in range(len(ulb))]
    cons = sum((f(net, ulb.views["strong"][i]) - targets[i]) ** 2 for i in range(len(ulb))) / len(ulb)
    w = 0.7 * ramp(step, 10)
    assert logs["unlabeled_consistency"] == pytest.approx(w * float(cons.detach()), rel=1e-10)
    # the consistency term reaches the student's weights (USB's bug compared a pass with itself)
    g_cons = torch.autograd.grad(cons, list(net.parameters()), retain_graph=True)
    assert sum(float(g.abs().sum()) for g in g_cons) > 1e-4
    check_sgd_step(net, method.model, sup + w * cons)
    # then the teacher moved towards the updated student with the warmed-up decay min(0.99, 1 - 1/(t+1))
    m = min(0.99, 1 - 1 / (step + 1))
    assert logs["ema_decay"] == pytest.approx(m, rel=1e-12)
    for t0, s1, t1 in zip(teacher.parameters(), method.model.parameters(), method.teacher.parameters(),
                          strict=True):
        torch.testing.assert_close(t1, m * t0 + (1 - m) * s1.detach(), rtol=1e-12, atol=1e-14)


def test_meanteacher_term_is_nonzero_on_identical_views_with_dropout():
    """The USB fault: with one view for both networks and the teacher equal to the student, the term must
    still be a real consistency (dropout noise in both passes), with a gradient that changes the step."""
    lab, ulb = data()
    same = Batch({"weak": ulb.views["weak"], "strong": ulb.views["weak"]}, ulb.index)
    on = build("meanteacher", {"ramp_up": 0.0}, dropout=0.3)
    off = build("meanteacher", {"ramp_up": 0.0, "unlabeled_weight": 0.0}, dropout=0.3)
    for p, q in zip(on.teacher.parameters(), on.model.parameters(), strict=True):
        assert torch.equal(p, q)
    torch.manual_seed(5)
    logs = on.training_step(lab, same, 0)
    torch.manual_seed(5)
    off.training_step(lab, same, 0)
    assert logs["unlabeled_consistency"] > 1e-6
    pairs = zip(on.model.parameters(), off.model.parameters(), strict=True)
    moved = max(float((p - q).detach().abs().max()) for p, q in pairs)
    assert moved > 1e-8


def test_mixmatch_step_matches_the_plain_loop_reference():
    method = build("mixmatch", {"views": 3})
    assert method.unlabeled_views == ("weak", "weak@2", "weak@3")
    lab, ulb = data()
    ulb.views["weak@3"] = ulb.views["weak"] - 0.2
    net, step = copy.deepcopy(method.model), 2
    g = torch.Generator()
    g.set_state(method.generator.get_state())
    logs = method.training_step(lab, ulb, step)
    draws = [ulb.views[v] for v in ("weak", "weak@2", "weak@3")]
    with torch.no_grad():
        pseudo = [sum(f(net, x[i]) for x in draws) / 3 for i in range(len(ulb))]
    rows = [lab.views["weak"][i] for i in range(len(lab))] + [x[i] for x in draws for i in range(len(ulb))]
    targets = [lab.y[i] for i in range(len(lab))] + [pseudo[i] for _ in draws for i in range(len(ulb))]
    lam = beta_draw(0.5, g)
    lam = max(lam, 1 - lam)
    perm = torch.randperm(len(rows), generator=g).tolist()
    mixed = [(lam * rows[j] + (1 - lam) * rows[perm[j]], lam * targets[j] + (1 - lam) * targets[perm[j]])
             for j in range(len(rows))]
    n_l = len(lab)
    sup = sum((f(net, x) - t) ** 2 for x, t in mixed[:n_l]) / n_l
    cons = sum((f(net, x) - t) ** 2 for x, t in mixed[n_l:]) / (len(rows) - n_l)
    w = 0.7 * ramp(step, 10)
    assert logs["mixup_lambda"] == pytest.approx(lam, rel=1e-12) and lam >= 0.5
    assert logs["regression"] == pytest.approx(float(sup.detach()), rel=1e-10)
    assert logs["unlabeled_consistency"] == pytest.approx(w * float(cons.detach()), rel=1e-10)
    check_sgd_step(net, method.model, sup + w * cons)


def test_meanteacher_teacher_is_the_ema_of_the_student_history():
    lab, ulb = data()
    for warmup in (True, False):
        method = build("meanteacher", {"ema_decay": 0.9, "ema_warmup": warmup})
        teacher = [p.detach().clone() for p in method.model.parameters()]
        for step in range(6):
            method.training_step(lab, ulb, step)
            m = min(0.9, 1 - 1 / (step + 1)) if warmup else 0.9
            teacher = [m * t + (1 - m) * s.detach() for t, s in zip(teacher, method.model.parameters(),
                                                                    strict=True)]
        for t, got in zip(teacher, method.teacher.parameters(), strict=True):
            torch.testing.assert_close(got, t, rtol=1e-12, atol=1e-14)
        assert not any(p.requires_grad for p in method.teacher.parameters())
        assert any(k.startswith("teacher.") for k in method.state_dict())


def test_meanteacher_predicts_with_the_teacher_unless_told_otherwise():
    lab, ulb = data()
    for eval_teacher in (True, False):
        method = build("meanteacher", {"eval_teacher": eval_teacher, "ema_decay": 0.9, "ema_warmup": False})
        for step in range(3):
            method.training_step(lab, ulb, step)
        x = ulb.views["weak"]
        net = method.teacher if eval_teacher else method.model
        torch.testing.assert_close(method.predict(x), net.eval()(x)["pred"])
        assert not torch.allclose(method.teacher(x)["pred"], method.model(x)["pred"])


@pytest.mark.parametrize("shape", ["linear", "sigmoid"])
def test_ramp_follows_the_run_length(shape):
    lab, ulb = data()
    method = build("pimodel", {"ramp_up": 0.5, "ramp_shape": shape}, total=8)
    for step in range(6):
        t = min(1.0, step / 4)
        expected = t if shape == "linear" else math.exp(-5 * (1 - t) ** 2)
        assert method.training_step(lab, ulb, step)["ramp"] == pytest.approx(expected, rel=1e-12)


def test_input_noise_is_drawn_from_the_method_stream():
    x = torch.randn(4, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    fresh = torch.Generator().manual_seed(3).get_state()
    assert input_noise(x, 0.0, g) is x and torch.equal(g.get_state(), fresh)  # no draw at std 0
    noisy = input_noise(x, 0.2, g)
    torch.testing.assert_close(noisy, x + 0.2 * torch.randn(4, 3, generator=torch.Generator().manual_seed(3),
                                                            dtype=torch.float64))


def test_mixup_formula_and_beta_draws():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 2, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    mx, my, lam, perm = mixup(x, y, 0.5, g)
    assert 0.5 <= lam <= 1 and sorted(perm.tolist()) == list(range(9))
    torch.testing.assert_close(mx, lam * x + (1 - lam) * x[perm])
    torch.testing.assert_close(my, lam * y + (1 - lam) * y[perm])
    draws = [beta_draw(0.5, g) for _ in range(3000)]
    assert stats.kstest(draws, stats.beta(0.5, 0.5).cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", ["pimodel", "meanteacher"])
def test_noiseless_consistency_warns_once(name):
    lab, ulb = data()
    plain = Batch({"weak": ulb.views["weak"], "weak@2": ulb.views["weak"], "strong": ulb.views["weak"]},
                  ulb.index)
    method = build(name)
    with pytest.warns(UserWarning, match=r"method_params\.input_noise"):
        method.training_step(lab, plain, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method.training_step(lab, plain, 1)  # once only
        for quiet in (build(name, {"input_noise": 0.1}), build(name, dropout=0.2)):
            quiet.training_step(lab, plain, 0)
    noisy = build(name, {"input_noise": 0.1, "ramp_up": 0.0})
    assert noisy.training_step(lab, plain, 0)["unlabeled_consistency"] > 1e-8


@pytest.mark.parametrize("name", ["pimodel", "meanteacher", "mixmatch"])
def test_unlabelled_term_changes_the_result(name):
    lab, ulb = data()
    runs = []
    for weight in (0.0, 1.0):
        method = build(name, {"unlabeled_weight": weight, "ramp_up": 0.0}, dropout=0.1,
                       optimizer=OptimizerConfig(lr=1e-2))
        torch.manual_seed(1)
        for step in range(8):
            logs = method.training_step(lab, ulb, step)
        assert (logs["unlabeled_consistency"] > 0) == (weight > 0)
        runs.append(method.predict(ulb.views["weak"]))
    assert float((runs[0] - runs[1]).abs().max()) > 1e-5


def _tiny(method, **overrides):
    return resolve_config({}, {"dataset": "diabetes", "method": method, "steps": 6, "eval_every": 2,
                               "progress": False, "plots": False, "threads": 1, "batch_size": 8,
                               "unlabeled_batch_size": 8, **overrides})


def _state(path):
    return load_checkpoint(path)["method"]


@pytest.mark.parametrize(("name", "params"), [
    ("pimodel", {"input_noise": 0.1}),
    ("meanteacher", {"input_noise": 0.1, "ema_decay": 0.9}),
    ("mixmatch", {}),
])
def test_resume_is_exact(tmp_path, name, params):
    cfg = _tiny(name, method_params=params)
    full = train(cfg, tmp_path / "full")

    def stop(step, logs):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "cut", callback=stop)
    resumed = train(None, tmp_path / "cut", resume=True)
    log = "metrics.jsonl"
    assert (tmp_path / "cut" / log).read_text() == (tmp_path / "full" / log).read_text()
    assert resumed.summary["test"] == full.summary["test"]
    a, b = _state(tmp_path / "full" / "last.pt"), _state(tmp_path / "cut" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
    if name == "meanteacher":  # a rebuilt method (no setup) loads the teacher and predicts with it
        assert any(k.startswith("teacher.") for k in a)
        again = evaluate_run(tmp_path / "full", "test")
        assert again["mae"] == pytest.approx(full.summary["test"]["mae"], rel=1e-9)
    lines = [json.loads(x) for x in (tmp_path / "full" / log).read_text().splitlines()]
    assert lines[0]["ramp"] == 0.0 and lines[-1]["unlabeled_consistency"] > 0


@pytest.mark.parametrize("name", ["pimodel", "meanteacher", "mixmatch", "fullysupervised"])
def test_digits_rotation_image_run(tmp_path, name):
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": name, "labeled": "10%", "steps": 2,
                              "eval_every": 2, "batch_size": 8, "unlabeled_batch_size": 8, "progress": False,
                              "plots": False, "threads": 1, "device": "cpu",
                              "model": {"name": "cnn", "channels": 8, "blocks": 1, "dropout": 0.1}})
    res = train(cfg, tmp_path / "run")
    assert res.summary["status"] == "finished" and np.isfinite(res.summary["test"]["mae"])
    assert res.summary["unlabeled"] == (0 if name == "fullysupervised" else 972)


def test_presets_fork_settings_and_dataset_keys():
    mt = resolve_config({}, {"dataset": "utkface-rankup", "method": "meanteacher"})
    assert mt.unlabeled_batch_size == 32 and mt.model["name"] == "wrn28_2"
    assert mt.method_params["ema_warmup"] is False and mt.method_params["student_view"] == "weak@2"
    assert mt.method_params["regression_loss"] == "l1" and mt.method_params["unlabeled_weight"] == 0.1
    for name in ("pimodel", "mixmatch"):
        cfg = resolve_config({}, {"dataset": "utkface-rankup", "method": name})
        assert cfg.method_params["regression_loss"] == "l1" and cfg.unlabeled_batch_size == 32
    for name in ("pimodel", "meanteacher", "mixmatch", "fullysupervised"):
        # the operator-sde preset's supervised keys are accepted by every method's parameters
        cfg = resolve_config({}, {"dataset": "operator-sde", "method": name})
        build_method(name, model_fn(), params=cfg.method_params)


def _cnn(seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", InputSpec("image", (1, 8, 8)), channels=4, blocks=1).double()


@pytest.mark.parametrize("name", ["pimodel", "meanteacher"])
def test_only_the_labelled_pass_moves_batch_norm_statistics(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 1, 8, 8, generator=g, dtype=torch.float64)
    lab = Batch({"weak": x[:4]}, torch.arange(4), x[:4].mean((1, 2, 3)))
    ulb = Batch({"weak": x[4:], "weak@2": x[4:] + 0.1, "strong": x[4:] - 0.2}, torch.arange(4, 10))
    method = build_method(name, _cnn, SGD)
    method.setup(TrainingContext(total_steps=10, train_size=10, labeled_y=lab.y, unlabeled_index=ulb.index))
    reference = _cnn()
    reference(lab.views["weak"])  # the labelled forward alone, in training mode
    method.training_step(lab, ulb, 2)
    for (key, want), got in zip(reference.named_buffers(), method.model.buffers(), strict=True):
        torch.testing.assert_close(got, want, msg=key)
