"""Training infrastructure: run directories, atomic checkpoints with RNG states, plots and progress bars.

``RunDir`` lays out one run's files (``docs/engine.md``); ``save_checkpoint``/``load_checkpoint`` write and
read checkpoints that load with ``torch.load(weights_only=True)``; ``capture_rng_state``/
``restore_rng_state`` make resumed runs draw the same random numbers; ``plot_*`` save PNG figures;
``TrainingProgress`` draws a progress bar with live scalars.
"""

from clss.atomic import atomic_write_bytes, atomic_write_text
from clss.engine.checkpoint import (
    CorruptCheckpointError,
    capture_rng_state,
    load_checkpoint,
    numpy_generator_state,
    restore_rng_state,
    save_checkpoint,
    set_numpy_generator_state,
    set_torch_generator_state,
    torch_generator_state,
)
from clss.engine.plots import plot_learning_curves, plot_predictions, plot_similarity_reordering
from clss.engine.progress import TrainingProgress
from clss.engine.rundir import RunDir
from clss.engine.trainer import (
    TrainingDiverged,
    TrainingInterrupted,
    TrainResult,
    evaluate,
    evaluate_run,
    load_data,
    predict_batched,
    train,
)

__all__ = [
    "CorruptCheckpointError",
    "RunDir",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingProgress",
    "atomic_write_bytes",
    "atomic_write_text",
    "capture_rng_state",
    "evaluate",
    "evaluate_run",
    "load_checkpoint",
    "load_data",
    "numpy_generator_state",
    "plot_learning_curves",
    "plot_predictions",
    "plot_similarity_reordering",
    "predict_batched",
    "restore_rng_state",
    "save_checkpoint",
    "set_numpy_generator_state",
    "set_torch_generator_state",
    "torch_generator_state",
    "train",
]
