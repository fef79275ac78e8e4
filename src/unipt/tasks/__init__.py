"""Task heads (head + loss + metric), one file per task; they read only :class:`AdaptedOutput`."""

from unipt.tasks.base import Task
from unipt.tasks.multi import MultiTask
from unipt.tasks.registry import build_task, list_tasks, register_task

__all__ = ["MultiTask", "Task", "build_task", "list_tasks", "register_task"]
