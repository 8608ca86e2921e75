"""Ramp-ups and the EMA teacher update against direct computations."""

import math

import pytest
import torch
from torch import nn

from clss.methods.parts import ema_update, ramp_weight


@pytest.mark.parametrize("step,length,shape,expected", [
    (0, 10, "linear", 0.0), (5, 10, "linear", 0.5), (10, 10, "linear", 1.0), (30, 10, "linear", 1.0),
    (0, 10, "sigmoid", math.exp(-5.0)), (5, 10, "sigmoid", math.exp(-5 * 0.25)), (12, 10, "sigmoid", 1.0),
    (0, 0, "linear", 1.0), (3, 0, "sigmoid", 1.0),
])
def test_ramp_weight(step, length, shape, expected):
    assert ramp_weight(step, length, shape) == pytest.approx(expected, rel=1e-12)


def test_ramp_weight_refuses_unknown_shape():
    with pytest.raises(ValueError, match="ramp shape must be one of"):
        ramp_weight(1, 10, "cosine")


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()


@pytest.mark.parametrize("step", [None, 0, 3, 10_000])
def test_ema_update_matches_the_formula(step):
    teacher, student = _net(0), _net(1)
    student(torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))  # moves BN
    before = [p.detach().clone() for p in teacher.parameters()]
    m = ema_update(teacher, student, 0.99, step)
    assert m == (0.99 if step is None else min(0.99, 1 - 1 / (step + 1)))
    for b, t, s in zip(before, teacher.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t.detach(), m * b + (1 - m) * s.detach(), rtol=1e-12,
                                   atol=1e-12 * float(b.abs().max()))
    for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
        assert torch.equal(tb, sb)
    assert all(not p.grad_fn for p in teacher.parameters())


def test_ema_update_first_step_copies_the_student():
    teacher, student = _net(0), _net(1)
    ema_update(teacher, student, 0.999, step=0)  # warm-up decay 0: the teacher becomes the student
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        assert torch.equal(t, s)
