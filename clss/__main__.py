"""``python -m clss``: the command line, as the ``clss`` console script (e.g. under
``torchrun --nproc-per-node N -m clss train ...``)."""

import sys

from clss_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
