"""Method.optimize's gradient clipping and mixed precision, the non-finite guard beside them, and the views
GCLSS's two passes read."""

import pytest
import torch
from torch import nn

from clss.methods import Batch, NonFiniteLossError, OptimizerConfig, build_method
from clss.models import MLPRegressor

METHODS = [("supervised", {}), ("clss", {}), ("gclss", {}), ("gclss", {"mode": "faithful"})]


def batches(n_l=12, n_u=10, d=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_l + n_u, d, generator=g, dtype=dtype)
    y = x[:, 0] + 0.5 * x[:, 1]
    views = ("weak", "weak@2")
    return (Batch(dict.fromkeys(views, x[:n_l]), torch.arange(n_l), y[:n_l]),
            Batch(dict.fromkeys(views, x[n_l:]), torch.arange(n_l, n_l + n_u), y[n_l:]))


def mlp(dropout=0.0):
    return lambda: MLPRegressor(6, (16, 16), dropout=dropout, init="default")


def make(name, params=None, precision="fp32", optimizer=None, seed=0, model_fn=None):
    torch.manual_seed(seed)
    return build_method(name, model_fn or mlp(), optimizer or OptimizerConfig(), params, precision)


def test_clipping_equals_torchs_clip_grad_norm_on_a_fixed_batch():
    lab, _ = batches()
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0}
    clipped = make("supervised", {"contrastive": "none"},
                   optimizer=OptimizerConfig(**sgd, clip_grad_norm=0.05))
    reference = make("supervised", {"contrastive": "none"}, optimizer=OptimizerConfig(**sgd))
    logs = clipped.training_step(lab, None, 0)

    opt = reference.configure_optimizers()[0]
    loss = nn.functional.mse_loss(reference.model(lab.view("weak"))["pred"], lab.y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.model.parameters(), 0.05)
    opt.step()
    assert float(norm) > 0.05  # the limit is active on this batch
    assert logs["grad_norm"] == pytest.approx(float(norm), rel=1e-6)
    for a, b in zip(clipped.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_no_clipping_logs_nothing_and_a_loose_limit_changes_nothing():
    lab, _ = batches()
    plain = make("supervised")
    loose = make("supervised", optimizer=OptimizerConfig(clip_grad_norm=1e6))
    logs_plain, logs_loose = plain.training_step(lab, None, 0), loose.training_step(lab, None, 0)
    assert "grad_norm" not in logs_plain and logs_loose["grad_norm"] < 1e6
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), loose.parameters(), strict=True))


@pytest.mark.parametrize(("name", "params"), METHODS)
def test_bf16_on_cpu_runs_each_method_close_to_fp32(name, params):
    lab, ulb = batches()
    unl = None if name == "supervised" else ulb
    ref = make(name, params).training_step(lab, unl, 1)
    method = make(name, params, precision="bf16")
    seen = []
    first = next(m for m in method.model.modules() if isinstance(m, nn.Linear))
    first.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    logs = method.training_step(lab, unl, 1)
    assert seen and set(seen) == {torch.bfloat16}  # the network really ran in bfloat16
    assert set(logs) == set(ref)
    # bfloat16 keeps ~3 significant digits; the step's losses come from its forward passes
    assert logs["loss"] == pytest.approx(ref["loss"], rel=3e-2)
    assert logs["regression"] == pytest.approx(ref["regression"], rel=3e-2)
    assert all(p.dtype == torch.float32 for p in method.parameters())


def test_bf16_outputs_reach_the_losses_and_seriation_in_float32():
    method = make("gclss", precision="bf16")
    out = method(batches()[0].view("weak"))
    assert out["pred"].dtype == out["feat"].dtype == torch.float32
    assert out["feat"].requires_grad  # the cast keeps the gradient


def test_fp16_is_refused_without_cuda():
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"precision 'fp16' needs a CUDA device .* the device is cpu"):
            make("supervised", precision="fp16").to("cpu")(torch.randn(2, 6))
    else:
        with pytest.raises(ValueError, match=r"precision 'fp16' needs a CUDA device .*CUDA is not available; "
                                             r"use precision 'bf16' or 'fp32'"):
            make("supervised", precision="fp16")


def test_fp32_guard_still_raises_on_a_nan_gradient_with_clipping_on():
    class SqrtAtZero(nn.Module):
        """The features of an MLP plus ``sqrt(0)`` of a zeroed row: a finite value with a NaN gradient."""

        def __init__(self):
            super().__init__()
            self.net = MLPRegressor(6, (16, 16), dropout=0.0)

        def forward(self, x):
            out = self.net(x)
            dead = out["feat"] * torch.tensor([0.0] + [1.0] * (x.shape[0] - 1))[:, None]
            return {"pred": out["pred"] + dead.pow(2).sum(1).sqrt(), "feat": out["feat"]}

    for precision in ("fp32", "bf16"):
        method = make("supervised", {"contrastive": "none"}, precision=precision, model_fn=SqrtAtZero,
                      optimizer=OptimizerConfig(clip_grad_norm=1.0))
        before = [p.detach().clone() for p in method.parameters()]
        with pytest.raises(NonFiniteLossError, match=r"gradient is NaN or infinite .* term\(s\) regression"):
            method.training_step(batches()[0], None, 0)
        assert all(torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))


def test_gclss_memory_pass_reads_the_second_weak_draw():
    lab, ulb = batches()
    for memory, labelled_views in [("unlabeled", ("weak",)), ("all", ("weak", "weak@2"))]:
        method = make("gclss", {"memory": memory})
        assert method.unlabeled_views == ("weak", "weak@2") and method.labeled_views == labelled_views
        second = {"weak": lab.view("weak") + 1, "weak@2": lab.view("weak") + 2}
        lab2 = Batch({k: second[k] for k in ("weak", "weak@2")}, lab.index, lab.y)
        ulb2 = Batch({"weak": ulb.view("weak") + 1, "weak@2": ulb.view("weak") + 2}, ulb.index, ulb.y)
        seen: list = []

        def record(_m, args, _o, seen=seen):
            seen.append((args[0], torch.is_grad_enabled()))

        method.model.register_forward_hook(record)
        method.training_step(lab2, ulb2, 1)
        (memory_x, memory_grad), (grad_x, grad_grad) = seen
        assert not memory_grad and grad_grad
        want = ulb2.view("weak@2") if memory == "unlabeled" else torch.cat([lab2.view("weak@2"),
                                                                             ulb2.view("weak@2")])
        assert torch.equal(memory_x, want)
        assert torch.equal(grad_x, torch.cat([lab2.view("weak"), ulb2.view("weak")]))
    faithful = make("gclss", {"mode": "faithful", "memory": "all"})
    assert faithful.unlabeled_views == faithful.labeled_views == ("weak",)
    with pytest.raises(ValueError, match="no view 'weak@2'"):
        make("gclss").training_step(lab, Batch({"weak": ulb.view("weak")}, ulb.index, ulb.y), 0)


@pytest.mark.gpu
@pytest.mark.parametrize(("name", "params"), METHODS)
def test_fp16_on_cuda_runs_each_method_with_a_grad_scaler(name, params):
    lab, ulb = (Batch({k: v.cuda() for k, v in b.views.items()}, b.index.cuda(), b.y.cuda())
                for b in batches())
    method = make(name, params, precision="fp16").cuda()
    logs = method.training_step(lab, None if name == "supervised" else ulb, 1)
    assert logs["amp_scale"] == 2.0 ** 16 and logs["amp_skipped"] in (0.0, 1.0)
    state = method.state_dict()["_extra_state"]
    assert "grad_scaler" in state and "generator" in state


@pytest.mark.gpu
def test_fp16_overflow_is_a_skipped_step_not_an_error():
    lab, _ = batches()
    lab = Batch({k: v.cuda() for k, v in lab.views.items()}, lab.index.cuda(), lab.y.cuda() * 1e4)
    method = make("supervised", {"contrastive": "none"}, precision="fp16").cuda()
    before = [p.detach().clone() for p in method.parameters()]
    logs = method.training_step(lab, None, 0)  # MSE ~1e8 times the scale 2**16 overflows float16
    assert logs["amp_skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
    assert method.training_step(lab, None, 1)["amp_scale"] == 2.0 ** 15
