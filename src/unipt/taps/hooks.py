"""Read intermediate outputs of any ``nn.Module`` with forward hooks, without an autograd graph.

Layers are named by exact module names (``encoder.layer.3``), glob patterns (``encoder.layer.*``:
``*`` stays within one dotted part, ``**`` crosses parts) or regular expressions
(``re:blocks\\.\\d+$``). Unknown names fail with the closest real names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


class TapNotFoundError(KeyError):
    """A requested tap matches no module of the backbone."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def resolve_module_names(model: nn.Module, patterns: list[str]) -> list[str]:
    """Expand names / globs / ``re:`` patterns into module names, in the order given (then model order).

    Raises:
        TapNotFoundError: a pattern matches nothing; the message lists close module names.
    """
    names = [name for name, _ in model.named_modules() if name]
    resolved: list[str] = []
    for pattern in patterns:
        if pattern.startswith("re:"):
            regex = re.compile(pattern[3:])
            hits = [n for n in names if regex.search(n)]
        elif any(ch in pattern for ch in "*?["):
            regex = glob_to_regex(pattern)
            hits = [n for n in names if regex.fullmatch(n)]
        else:
            hits = [pattern] if pattern in names else []
        if not hits:
            close = difflib.get_close_matches(pattern.removeprefix("re:"), names, n=5, cutoff=0.5)
            hint = f" Close matches: {close}." if close else f" Some module names: {names[:8]}."
            raise TapNotFoundError(
                f"Tap {pattern!r} matches no module of {type(model).__name__}.{hint} "
                "Pass exact names from model.named_modules(), a glob like 'encoder.layer.*' or 're:<regex>'."
            )
        resolved.extend(h for h in hits if h not in resolved)
    return resolved


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Module-name glob: ``*`` stays inside one dotted part, ``**`` crosses parts, ``?`` one char."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def first_tensor(output: object) -> torch.Tensor:
    """The feature tensor a module or backbone produced: itself, its ``last_hidden_state`` (Hugging Face
    outputs, attribute or key), or the first item of a tuple / list (blocks often return tuples).

    For a torchvision classifier this is the logits: :func:`unipt.taps.features.final_feature_layer`
    finds the layer that holds its features instead.
    """
    if isinstance(output, torch.Tensor):
        return output
    tensor = getattr(output, "last_hidden_state", None)
    if tensor is None and isinstance(output, Mapping):
        tensor = output.get("last_hidden_state")
    if isinstance(tensor, torch.Tensor):
        return tensor
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find a feature tensor in a module output of type {type(output).__name__}")


@dataclass
class Capture:
    """Outputs captured by :func:`capture_outputs`: the latest output and the call count per module."""

    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


@contextmanager
def capture_outputs(model: nn.Module, names: list[str]) -> Iterator[Capture]:
    """Within the block, ``capture.outputs[name]`` holds the latest output of each named module.

    A module called several times in one forward keeps its last output; ``capture.calls`` counts
    the calls so callers can refuse ambiguous taps.
    """
    modules = dict(model.named_modules())
    capture = Capture(calls=dict.fromkeys(names, 0))
    handles = []
    for name in names:
        def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> None:
            capture.outputs[name] = first_tensor(output)
            capture.calls[name] += 1

        handles.append(modules[name].register_forward_hook(hook))
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()
