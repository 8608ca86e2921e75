import os
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="clss-numba-"))

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)

# Property tests draw the same examples on every run and machine (seeded, like everything else): a
# random draw must not turn CI red by itself (e.g. a health check tripped by an unlucky filter rate).
settings.register_profile("clss", derandomize=True)
settings.load_profile("clss")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
