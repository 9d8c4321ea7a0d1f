"""``python -m speechint_desktop``: the ``speechint`` command line."""

import sys

from .cli import main

sys.exit(main())
