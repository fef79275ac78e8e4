"""Entry point for ``python -m unipt.bench``."""

from unipt.bench.cli import main

raise SystemExit(main())
