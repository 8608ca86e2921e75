"""Method-level checks: gradients of every term, step counts, selection direction, pseudo-targets."""

import numpy as np
import pytest
import torch

from clss.data import InputSpec
from clss.methods import CLSS, GCLSS, Batch, NonFiniteLossError, Supervised, build_method, list_methods
from clss.methods.parts import (
    anchored_targets,
    perturbation_norm,
    pseudo_rank_terms,
    stable_subset,
    supervised_terms,
)
from clss.models import MLPRegressor, build_model
from clss.seriation import seriate


def plain(x, index, y):
    """A batch as the loader gives it for data without augmentation: every view is the plain input."""
    return Batch({"weak": x, "weak@2": x}, index, y)


def batches(n_l=12, n_u=10, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, d, generator=g, dtype=torch.float64)
    y = x[:, 0] + 0.5 * x[:, 1]
    return plain(x[:n_l], torch.arange(n_l), y[:n_l]), plain(x[n_l:], torch.arange(n_l, n_l + n_u), y[n_l:])


def model_fn(dropout=0.1):
    return lambda: MLPRegressor(6, (16, 16), dropout=dropout, init="default").double()


def labelled_terms(method, lab, pred, feat):
    p = method.params
    return supervised_terms(pred, feat, lab.y, regression=p.regression_loss,
                            contrastive=method.labeled_contrastive, weight=p.contrastive_weight,
                            rows=p.contrastive_rows, generator=method.generator)


def unlabelled_terms(method, pred, feat, targets):
    p = method.params
    return pseudo_rank_terms(pred, feat, targets, rank_loss=method.rank_loss,
                             consistency_loss=method.consistency_loss, rank_weight=p.rank_weight,
                             consistency_weight=p.consistency_weight)


def grads_of(term, module):
    grads = torch.autograd.grad(term, list(module.parameters()), allow_unused=True, retain_graph=True)
    return sum(float(g.abs().sum()) for g in grads if g is not None)


def test_every_loss_term_carries_gradient():
    # USB's Mean Teacher trained without its consistency loss for years: check each term reaches the weights.
    torch.manual_seed(0)
    lab, ulb = batches()
    method = CLSS(model_fn())
    pred_l, feat_l = method.model(lab.view("weak")).values()
    parts = labelled_terms(method, lab, pred_l, feat_l)
    pred_u, feat_u = method.model(ulb.view("weak")).values()
    ranks = torch.randperm(len(ulb)).double()
    parts.update(unlabelled_terms(method, pred_u, feat_u, ranks))
    assert set(parts) == {"regression", "contrastive", "unlabeled_rank", "unlabeled_consistency"}
    for name, term in parts.items():
        assert grads_of(term, method.model) > 0, name


def test_unlabeled_terms_off_when_weights_are_zero():
    method = CLSS(model_fn(), params={"rank_weight": 0.0})
    _, ulb = batches()
    pred, feat = method.model(ulb.view("weak")).values()
    assert unlabelled_terms(method, pred, feat, torch.arange(len(ulb)).double()) == {}


@pytest.mark.parametrize(("mode", "steps"), [("clean", 1), ("faithful", 2)])
def test_gclss_optimizer_steps_per_iteration(mode, steps):
    torch.manual_seed(0)
    method = GCLSS(model_fn(), params={"mode": mode})
    lab, ulb = batches()
    method.training_step(lab, ulb, 0)
    method.training_step(lab, ulb, 1)
    state = method.configure_optimizers()[0].state
    assert {int(s["step"]) for s in state.values()} == {2 * steps}


def test_gclss_selection_direction():
    torch.manual_seed(1)
    method = GCLSS(model_fn(), params={"keep": 4})
    _, ulb = batches(n_u=10)
    with torch.no_grad():
        f0 = method.model(ulb.view("weak"))["feat"]
        f1 = method.model(ulb.view("weak"))["feat"]
    from clss.seriation import cross_view_perturbation

    pert = cross_view_perturbation(f0, f1).numpy()
    low = stable_subset(f0, f1, method.params.keep, perturbation="cv", objective="min").numpy()
    high = stable_subset(f0, f1, method.params.keep, perturbation="cv", objective="max_faithful").numpy()

    def total(idx):
        return pert[np.ix_(idx, idx)].sum()

    assert len(low) == len(high) == 4
    assert total(low) <= total(high)


def test_gclss_pseudo_values_are_the_anchored_solution_within_label_range():
    method = GCLSS(model_fn(dropout=0.0))
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.rand(9, 5, generator=g, dtype=torch.float64), dim=-1)
    sim = feats @ feats.T
    y = torch.tensor([0.0, 1.5, -2.0, 3.0], dtype=torch.float64)
    values, ranks = anchored_targets(feats[:5], feats[5:], y, negative=method.params.negative)
    ref = seriate(sim.numpy(), method="anchored", anchors=np.arange(5, 9), anchor_values=y.numpy())
    assert np.allclose(values.numpy(), ref.positions[:5])
    assert float(values.min()) >= -2.0 - 1e-12 and float(values.max()) <= 3.0 + 1e-12
    assert torch.equal(ranks, torch.argsort(torch.argsort(values)).double())


def test_gclss_diagnostics_and_hidden_truth_logging():
    torch.manual_seed(0)
    method = GCLSS(model_fn())
    lab, ulb = batches()
    logs = method.training_step(lab, ulb, 0)
    for key in ("unlabeled_kept", "recovery_tolerance", "perturbation", "recovery_guaranteed",
                "pseudo_value_tau"):
        assert key in logs
    assert logs["unlabeled_kept"] == round(0.75 * len(ulb))
    logs = method.training_step(lab, Batch(ulb.views, ulb.index, None), 1)
    assert "pseudo_value_tau" not in logs
    # diagnostics (and the hidden-truth tau) every diagnostics_every steps only
    assert "recovery_tolerance" not in method.training_step(lab, ulb, 3)
    assert "pseudo_value_tau" in method.training_step(lab, ulb, 20)
    clss = CLSS(model_fn(), params={"diagnostics_every": 5})
    assert "pseudo_rank_tau" in clss.training_step(lab, ulb, 5)
    assert "pseudo_rank_tau" not in clss.training_step(lab, ulb, 6)


@pytest.mark.parametrize(("memory", "method_name"), [("unlabeled", "gclss"), ("all", "gclss"),
                                                     (None, "clss")])
def test_rows_forwarded_per_step(memory, method_name):
    # rank_rows draws the unlabelled rows before any forward; GCLSS's memory pass covers the unlabelled
    # rows only unless memory="all"
    torch.manual_seed(0)
    params = {"rank_rows": 6} | ({} if memory is None else {"memory": memory})
    method = build_method(method_name, model_fn(), params=params)
    lab, ulb = batches(n_l=12, n_u=10)
    seen = []
    method.model.register_forward_hook(lambda _m, args, _out: seen.append((args[0].shape[0],
                                                                          torch.is_grad_enabled())))
    method.training_step(lab, ulb, 1)
    expected = {"unlabeled": [(6, False), (18, True)], "all": [(18, False), (18, True)],
                None: [(12, True), (6, True)]}[memory]
    assert seen == expected


@pytest.mark.parametrize("n_changed", [0, 3, 12, 30])
def test_perturbation_norm_equals_the_full_spectral_norm(n_changed):
    g = torch.Generator().manual_seed(n_changed)
    p1 = torch.nn.functional.normalize(torch.rand(30, 7, generator=g, dtype=torch.float64), dim=-1)
    p0 = p1.clone()
    rows = torch.randperm(30, generator=g)[:n_changed]
    p0[rows] = torch.nn.functional.normalize(p0[rows] + 0.1 * torch.rand(n_changed, 7, generator=g,
                                                                          dtype=torch.float64), dim=-1)
    full = torch.linalg.matrix_norm(p1 @ p1.T - p0 @ p0.T, ord=2)
    assert perturbation_norm(p0, p1) == pytest.approx(float(full), rel=1e-10, abs=1e-14)


def test_faithful_mode_needs_seven_labelled_rows_and_distinct_labels():
    method = GCLSS(model_fn(), params={"mode": "faithful"})
    lab, ulb = batches(n_l=6)
    with pytest.raises(ValueError, match="7 labelled rows"):
        method.training_step(lab, ulb, 0)
    lab, ulb = batches(n_l=8)
    with pytest.raises(ValueError, match="distinct labels"):
        method.training_step(Batch(lab.views, lab.index, torch.zeros(8, dtype=torch.float64)), ulb, 0)


def test_non_finite_loss_is_refused_before_the_step():
    method = Supervised(model_fn(), params={"contrastive": "none"})
    lab, _ = batches()
    before = [p.detach().clone() for p in method.model.parameters()]
    bad = Batch(lab.views, lab.index, torch.full_like(lab.y, float("nan")))
    with pytest.raises(NonFiniteLossError, match="step was skipped"):
        method.training_step(bad, None, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, method.model.parameters(), strict=True))


def test_method_state_round_trip_includes_generator():
    method = CLSS(model_fn(), params={"rank_rows": 4})
    torch.randperm(10, generator=method.generator)
    state = method.state_dict()
    other = CLSS(model_fn(), params={"rank_rows": 4})
    other.load_state_dict(state)
    assert torch.equal(torch.randperm(10, generator=method.generator),
                       torch.randperm(10, generator=other.generator))


def test_registry_and_bad_parameters():
    names = [m.name for m in list_methods()]
    assert names[0] == "supervised" and {"clss", "gclss", "cps", "ucvme"} <= set(names)
    with pytest.raises(ValueError, match="unknown method"):
        build_method("meanteacher2", model_fn())
    with pytest.raises(ValueError, match="mode"):
        GCLSS(model_fn(), params={"mode": "exact"})
    with pytest.raises(ValueError, match="keep"):
        GCLSS(model_fn(), params={"keep": 1.5})
    with pytest.raises(ValueError, match="memory"):
        GCLSS(model_fn(), params={"memory": "labeled"})
    with pytest.raises(ValueError, match="diagnostics_every"):
        CLSS(model_fn(), params={"diagnostics_every": -1})
    with pytest.raises(ValueError, match="regression_loss"):
        Supervised(model_fn(), params={"regression_loss": "huber"})
    with pytest.raises(ValueError, match=r"method_params\.contrastive must be one of"):
        Supervised(model_fn(), params={"contrastive": "triplet"})
    with pytest.raises(ValueError, match="unlabelled batch"):
        CLSS(model_fn()).training_step(batches()[0], None, 0)


def test_mlp_paper_initialisation_and_interface():
    model = build_model("mlp", InputSpec("tabular", (241,)), hidden=(100, 100))
    pred, feat = model(torch.randn(4, 241)).values()
    assert pred.shape == (4,) and feat.shape == (4, 100)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.detach().flatten() for m in linears])
    assert 0.0008 < float(weights.std()) < 0.0012
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(3, dropout=1.0)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet9000", InputSpec("tabular", (3,)))


@pytest.mark.parametrize("mode", ["clean", "faithful"])
def test_gclss_drops_unlabelled_rows_the_anchors_cannot_reach(mode):
    # With zero biases an all-zero input has an all-zero feature: no similarity to anything, so its
    # anchored pseudo-value is undefined (NaN) and must not reach a loss.
    torch.manual_seed(0)
    method = GCLSS(lambda: MLPRegressor(6, (16, 16), dropout=0.0, init="paper", init_std=0.3).double(),
                   params={"mode": mode, "keep": 1.0})
    lab, ulb = batches()
    x_u = ulb.view("weak").clone()
    x_u[3] = 0.0
    logs = method.training_step(lab, plain(x_u, ulb.index, ulb.y), 0)
    assert np.isfinite(logs["loss"])
    if mode == "clean":  # faithful pass 2 runs after a step that made the biases non-zero
        assert logs["unlabeled_kept"] == len(ulb) - 1


@pytest.mark.parametrize("mode", ["clean", "faithful"])
@pytest.mark.parametrize("loss", ["rnc", "conord"])
def test_gclss_contrastive_branch_puts_labelled_and_unlabelled_rows_on_one_scale(mode, loss):
    # The unlabelled rows enter as averages of unit embeddings; the labelled rows must too, whatever the
    # scale of the model's raw features (here inputs x 100 make raw feature norms far above 1).
    torch.manual_seed(0)
    lab, ulb = batches(n_l=12, n_u=10)
    lab, ulb = (plain(b.view("weak") * 100, b.index, b.y) for b in (lab, ulb))
    method = GCLSS(model_fn(), params={"unlabeled_loss": loss, "mode": mode, "rank_weight": 1.0})
    seen = []
    method.rank_loss.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    method.training_step(lab, ulb, 0)
    assert seen, "the contrastive branch did not run"
    norms = seen[-1].norm(dim=-1)
    raw = method.model(lab.view("weak"))["feat"]
    assert float(raw.detach().norm(dim=-1).min()) > 10  # the raw features are far from unit
    assert bool((norms <= 1 + 1e-9).all()) and float(norms[: len(lab)].min()) > 1 - 1e-9, norms


def test_submodules_and_extra_state_keep_the_names_of_the_class_ladder():
    # The loss modules and the generator stay attributes of the method, so state-dict keys (and checkpoints
    # written before the methods were built from parts) are unchanged.
    for cls in (CLSS, GCLSS):
        method = cls(model_fn(), params={"unlabeled_loss": "conord"})
        assert [n for n, _ in method.named_children()] == ["model", "labeled_contrastive", "rank_loss",
                                                           "consistency_loss"]
        assert set(method.state_dict()["_extra_state"]) == {"generator"}
    method = Supervised(model_fn())
    assert [n for n, _ in method.named_children()] == ["model", "labeled_contrastive"]
    assert set(method.state_dict()["_extra_state"]) == {"generator"}
