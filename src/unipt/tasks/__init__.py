"""Task heads (head + loss + metric), one file per task; they read only :class:`AdaptedOutput`."""

from unipt.tasks.base import Task, build_task, list_tasks

__all__ = ["Task", "build_task", "list_tasks"]
