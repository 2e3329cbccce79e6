"""``python -m pyrovae``: the same as the ``pyrovae`` command."""

import sys

from .cli import main

sys.exit(main())
