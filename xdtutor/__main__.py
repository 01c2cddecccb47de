"""``python -m xdtutor …`` (and ``torchrun -m xdtutor run …``): the ``xdtutor`` command."""

import sys

from .cli import main

sys.exit(main())
