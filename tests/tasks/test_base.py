import pytest
import torch

from unipt.tasks import Task, build_task, list_tasks, register_task


def test_list_tasks_names_every_builtin() -> None:
    assert {"retrieval", "video_retrieval", "vqa", "gqa", "grounding", "classification"} <= set(list_tasks())


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'.*retrieval"):
        build_task("nope")


def test_bad_option_names_the_task() -> None:
    with pytest.raises(TypeError, match="cannot build task 'classification'"):
        build_task("classification", hidden_dim=4, num_classes=2, colour="red")


@pytest.mark.parametrize(
    ("name", "options", "towers", "primary"),
    [
        ("retrieval", {}, ("image", "text"), "rsum"),
        ("video_retrieval", {}, ("video", "text"), "t2v_r1"),
        ("vqa", {"hidden_dim": 4, "num_answers": 3}, ("joint",), "accuracy"),
        ("gqa", {"hidden_dim": 4, "num_answers": 3}, ("joint",), "accuracy"),
        ("grounding", {"hidden_dim": 4}, ("queries",), "acc@0.5"),
        ("classification", {"hidden_dim": 4, "num_classes": 2}, ("text",), "accuracy"),
    ],
)
def test_build_every_task(name: str, options: dict, towers: tuple, primary: str) -> None:
    task = build_task(name, **options)
    assert isinstance(task, Task)
    assert task.name == name
    assert task.towers == towers
    assert task.primary_metric == primary


def test_register_custom_task_and_refuse_duplicates() -> None:
    class Constant(Task):
        name = "constant_test_task"
        towers = ("text",)
        primary_metric = "zero"

        def forward(self, features, batch):
            return {"loss": torch.zeros(())}

    register_task("constant_test_task", Constant)
    assert "constant_test_task" in list_tasks()
    assert isinstance(build_task("constant_test_task"), Constant)
    with pytest.raises(ValueError, match="already registered"):
        register_task("retrieval", Constant)


def test_missing_stream_and_batch_key_errors_are_clear() -> None:
    task = build_task("classification", hidden_dim=4, num_classes=2)
    with pytest.raises(KeyError, match="needs the feature stream 'text'"):
        task({}, {"label": torch.zeros(1)})
