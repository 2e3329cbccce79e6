"""``python -m pyrovae.cli``: the same as the ``pyrovae`` command."""

import sys

from . import main

sys.exit(main())
