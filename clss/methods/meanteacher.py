"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017, "Mean teachers are better role models"), regression form.

Per step: the supervised terms on the labelled rows; the student's predictions on the unlabelled rows'
strong (noisy) view are pulled towards the teacher's predictions on their weak view (MSE; the teacher
carries no gradient), weighted by ``unlabeled_weight`` times a ramp-up over the first ``ramp_up`` fraction
of training; after the optimiser step the teacher moves towards the student, ``θ' ← m θ' + (1 − m) θ``.
Both passes run in training mode (dropout on), as in the paper and in RankUp's USB fork; as in the fork, the
student's unlabelled pass leaves its batch-norm running statistics alone. Evaluation and
:meth:`predict` use the teacher by default (``eval_teacher``).

USB's own Mean Teacher compared the teacher's weak-view output with itself (a zero term without gradient);
here the student's and the teacher's passes are separate forwards of separate networks on separate views.
On tabular data both views are the same rows: the noise must come from dropout or ``input_noise`` (the
method warns once when there is none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from clss.methods.base import Batch, Method, OptimizerConfig, register_method
from clss.methods.common import contrastive_loss
from clss.methods.parts import (
    ema_copy,
    ema_update,
    frozen_batchnorm,
    input_noise,
    ramp_weight,
    supervised_terms,
    warn_if_noiseless,
)
from clss.methods.pimodel import FORK_UTKFACE, PiModelParams
from clss.schema import param


@dataclass
class MeanTeacherParams(PiModelParams):
    """The Π-model's keys (:class:`~clss.methods.pimodel.PiModelParams`: unlabelled weight 0.1 ramped
    linearly over 40 % of training, as RankUp's fork), plus:

    ``ema_decay``: the teacher's EMA decay m (0.999: ``ema_m`` in the fork's configurations, and the paper's
    value late in training). ``ema_warmup``: use ``m_t = min(m, 1 − 1/(t + 1))`` at step t, so the teacher
    is the running mean of the student early on (Tarvainen & Valpola's code); the fork has no warm-up, and
    without one a 0.999 teacher stays near its initialisation for the first thousand steps.
    ``student_view``: the student's view of the unlabelled rows, ``"strong"`` (the paper's noisier input)
    or ``"weak@2"`` (a second weak draw, as the fork). ``eval_teacher``: evaluate and predict with the
    teacher (the paper's and the fork's choice) instead of the student.
    """

    ema_decay: float = param(0.999, ge=0, lt=1)
    ema_warmup: bool = param(True, "bool")
    student_view: str = param("strong", "str", choices=("strong", "weak@2"))
    eval_teacher: bool = param(True, "bool")


@register_method
class MeanTeacher(Method):
    """Mean Teacher: an EMA teacher's weak-view predictions supervise the student's strong view."""

    name = "meanteacher"
    description = "Mean Teacher: student (strong view) vs EMA teacher (weak view) MSE; teacher predicts"
    semi_supervised = True
    Params = MeanTeacherParams
    params: MeanTeacherParams
    # The fork's UTKFace settings (decay 0.999, no warm-up, a second weak view for the student). No official
    # setting exists for the other presets: the defaults apply there, our choice.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"utkface-rankup": {
        **FORK_UTKFACE, "method_params": {**FORK_UTKFACE["method_params"], "ema_decay": 0.999,
                                          "ema_warmup": False, "student_view": "weak@2"}}}

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.teacher = ema_copy(self.model)
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)
        self._noise_checked = False

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("weak", self.params.student_view)

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) == 0:
            raise ValueError(f"{self.name} needs unlabelled rows in every step")
        p = self.params
        length = round(p.ramp_up * self.require_context().total_steps)
        self.model.train()
        self.teacher.train()  # the teacher's own dropout noise; its batch-norm buffers are the student's
        out_l = self(labeled.view("weak"))
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        x_teacher = input_noise(unlabeled.view("weak"), p.input_noise, self.generator)
        x_student = input_noise(unlabeled.view(p.student_view), p.input_noise, self.generator)
        if not self._noise_checked:
            self._noise_checked = True
            warn_if_noiseless(self.name, self.model, x_teacher, x_student, p.input_noise)
        with torch.no_grad():
            target = self.forward(x_teacher, self.teacher)["pred"]
        with frozen_batchnorm(self.model):  # as the fork: only labelled passes move the statistics
            pred = self(x_student)["pred"]
        ramp = ramp_weight(step, length, p.ramp_shape)
        weight = self.unlabeled_factor(p.unlabeled_weight, ramp)
        parts["unlabeled_consistency"] = weight * F.mse_loss(pred, target)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        decay = ema_update(self.teacher, self.model, p.ema_decay, step if p.ema_warmup else None)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "ramp": ramp, "ema_decay": decay, **stats}

    @property
    def prediction_model(self) -> nn.Module:
        """The teacher (``eval_teacher``, the default) or the student."""
        return self.teacher if self.params.eval_teacher else self.model
