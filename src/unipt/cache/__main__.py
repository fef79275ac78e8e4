"""``python -m unipt.cache build|plan|verify`` (also under ``torchrun -m unipt.cache``)."""

import sys

from unipt.cache.cli import main

sys.exit(main())
