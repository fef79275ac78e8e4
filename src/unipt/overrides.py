"""Overrides as people type them.

``--set data.limit_train=32 train.epochs=1`` (several after one flag, as Hydra / OmegaConf users
type them) and ``--set a=1 --set b=2`` both work; each value is read as YAML. The values are checked
against the config dataclasses' type hints when the run config is built
(:func:`unipt.train.config_check.check_section`), so a bad value names its key and the type it needs.
"""

from __future__ import annotations

import argparse


def key_value(text: str) -> str:
    """argparse ``type`` of one ``--set`` item: it must look like ``key.sub=value``."""
    key = text.split("=", 1)[0].strip()
    if "=" not in text or not key:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE (e.g. train.epochs=3); options such as --set come after the "
            "positional arguments: unipt train CONFIG.yaml --set train.epochs=1 data.limit_train=32")
    return text


def add_set_argument(parser: argparse.ArgumentParser, dest: str = "set") -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable; the items collect in ``args.<dest>`` (a list)."""
    parser.add_argument("--set", dest=dest, action="extend", nargs="+", type=key_value, default=[],
                        metavar="KEY=VALUE",
                        help="override run config values, e.g. --set train.epochs=1 data.limit_train=32 "
                             "(values are YAML; repeatable)")
