"""Share a saved side network or a trained run on the Hugging Face Hub (needs the network and a token).

    import unipt.hub
    model.push_to_hub("me/unipt-minilm-sst2")              # a UniPTModel: save_pretrained + upload
    unipt.hub.push_to_hub("runs/rt", "me/unipt-rt")        # a run folder: card, config, best checkpoint

Nothing here runs offline; the folder that would be uploaded is exactly what ``save_pretrained`` or
``unipt train`` wrote (model card included), so it can be checked locally first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# What a run folder shares (upload patterns): the card, the config, the summary and the best checkpoint's
# weights, i.e. its head and each tower's save_pretrained folder (not the optimiser state, nor tracker logs).
RUN_FILES = ["README.md", "run_config.yaml", "summary.json", "metrics.jsonl", "training_curve.png",
             "checkpoints/best/head.safetensors", "checkpoints/best/meta.json", "checkpoints/best/run_config.yaml",
             "checkpoints/best/*/*.safetensors", "checkpoints/best/*/*.json"]


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload UniPT side network", allow_patterns: list[str] | None = None) -> Any:
    """Create ``repo_id`` if needed and upload ``folder`` (a run folder uploads only :data:`RUN_FILES`).

    Returns the ``CommitInfo`` of ``huggingface_hub.HfApi.upload_folder``.
    """
    from huggingface_hub import HfApi

    src = Path(folder)
    if not (src / "README.md").is_file():
        raise FileNotFoundError(f"{src} has no README.md model card; save it with save_pretrained() or unipt train")
    if allow_patterns is None and (src / "run_config.yaml").is_file():
        allow_patterns = RUN_FILES
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(src), commit_message=commit_message,
                             allow_patterns=allow_patterns)
