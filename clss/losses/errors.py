"""The exceptions for NaN and infinite values, shared by the losses and the training methods."""

from __future__ import annotations


class NonFiniteLossError(RuntimeError):
    """A loss, its input or a gradient became NaN or infinite; a training step that raises it has not
    changed the weights (the engine then stops the run as diverged)."""


class NonFiniteError(NonFiniteLossError, ValueError):
    """A loss got NaN or infinite input, or overflowed on finite input.

    A ``ValueError`` (bad input to a public function) and a :class:`NonFiniteLossError` (inside training
    it means the model diverged, so the engine stops the run as diverged instead of crashing).
    """
