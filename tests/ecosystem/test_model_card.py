"""Model cards: save_pretrained and trained runs write README.md in the Hugging Face model-card format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

import unipt
from unipt.model_card import MARKER, hub_model_id


def body_section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## ``."""
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def fenced(section: str) -> str:
    return section.split("```", 2)[1].split("\n", 1)[1]


def test_save_pretrained_writes_a_hub_model_card(tiny_bert, tmp_path: Path) -> None:
    model = unipt.get_unipt_model(tiny_bert)
    model.save_pretrained(tmp_path, backbone_name="google-bert/bert-base-uncased", datasets=["sst2"],
                          metrics={"test": {"accuracy": 91.25}}, peak_memory_mb=123.4, step_time_ms=56.7)
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "unipt" and data["base_model"] == "google-bert/bert-base-uncased"
    assert "unipt" in data["tags"] and data["datasets"] == ["sst2"] and data["metrics"] == ["accuracy"]
    result = data["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "value": 91.25}
    assert result["dataset"]["split"] == "test"

    trainable = model.trainable_parameters()[0]
    assert f"**{trainable:,}**" in card.text
    assert json.loads(fenced(body_section(card.text, "Configuration"))) == model.config.to_dict()
    cost = body_section(card.text, "Cost (measured)")
    assert "123.4 MB" in cost and "56.7 ms" in cost
    snippet = fenced(body_section(card.text, "How to load"))
    compile(snippet, "snippet", "exec")
    assert 'AutoModel.from_pretrained("google-bert/bert-base-uncased")' in snippet
    assert "UniPTModel.from_pretrained(backbone" in snippet


def test_card_without_measurements_or_hub_backbone(tiny_bert, tmp_path: Path) -> None:
    unipt.get_unipt_model(tiny_bert).save_pretrained(tmp_path)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "unipt" and card.data.base_model is None  # a random BertModel
    assert "Not measured for this save" in card.text and "`BertModel`" in card.text
    unipt.get_unipt_model(tiny_bert).save_pretrained(tmp_path / "no_card", model_card=False)
    assert not (tmp_path / "no_card" / "README.md").exists()


def test_a_readme_the_user_wrote_is_kept(tiny_bert, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my notes\n")
    unipt.get_unipt_model(tiny_bert).save_pretrained(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    (tmp_path / "README.md").write_text(f"---\nlibrary_name: unipt\n---\n{MARKER}\nold card\n")
    unipt.get_unipt_model(tiny_bert).save_pretrained(tmp_path)
    assert "old card" not in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize(("name", "expected"), [
    ("minilm", "sentence-transformers/all-MiniLM-L6-v2"),
    ("clip-vision:openai/clip-vit-base-patch32", "openai/clip-vit-base-patch32"),
    ("bert-base-uncased", "bert-base-uncased"),
    ("efficientnet-lite0", None), ("random:tiny-bert", None), ("timm:resnet50", None), ("/no/such/folder", None),
])
def test_hub_ids_only_for_hub_backbones(name: str, expected: str | None) -> None:
    assert hub_model_id(name) == expected


def test_a_trained_run_has_a_card_whose_snippet_loads_it(finished_run: tuple[Path, dict]) -> None:
    run, summary = finished_run
    card = ModelCard.load(run / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "unipt" and data["pipeline_tag"] == "text-classification"
    assert data["datasets"] == ["text_jsonl"] and "classification" in data["tags"]
    values = {(r["dataset"]["split"], m["type"]): m["value"]
              for r in data["model-index"][0]["results"] for m in r["metrics"]}
    assert values[("test", "accuracy")] == pytest.approx(summary["test_metrics"]["accuracy"], abs=1e-4)
    assert f"**{summary['trainable_parameters']:,}**" in card.text
    cost = body_section(card.text, "Cost (measured)")
    assert f"{summary['peak_memory_mb']:,.1f} MB" in cost and f"{summary['step_time_ms']:,.1f} ms" in cost
    assert yaml.safe_load(fenced(body_section(card.text, "Configuration"))) == yaml.safe_load(
        (run / "run_config.yaml").read_text())

    scope: dict = {}
    exec(fenced(body_section(card.text, "How to load")).replace("print(", "predictions = ("), scope)
    assert scope["predictions"][0]["input"] == "a moving, funny film"
    assert {t["label"] for t in scope["predictions"][0]["top"]} <= {0, 1}


def test_push_to_hub_uploads_the_card_and_best_checkpoint(finished_run: tuple[Path, dict], monkeypatch) -> None:
    """No network here: a stand-in HfApi records what would be uploaded."""
    import huggingface_hub

    from unipt.hub import RUN_FILES, push_to_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message, allow_patterns):
            calls["upload"] = (repo_id, Path(folder_path), allow_patterns)
            return "commit"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    run, _ = finished_run
    assert push_to_hub(run, "me/tiny", private=True) == "commit"
    assert calls["repo"] == ("me/tiny", True, True) and calls["upload"] == ("me/tiny", run, RUN_FILES)
    assert all(any(p.is_file() for p in run.glob(pattern)) for pattern in RUN_FILES)
