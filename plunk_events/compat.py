"""Django's Tasks API: ``django.tasks`` from Django 6, the ``django-tasks`` backport before.

The rest of the app imports tasks only from here. The names are Django 6's (``InvalidTask``,
``InvalidTaskBackend``); on the backport they are its equivalents.
"""

from __future__ import annotations

try:  # Django >= 6.0
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the backport
    from django_tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django_tasks.exceptions import (
        InvalidTaskBackendError as InvalidTaskBackend,
    )
    from django_tasks.exceptions import (
        InvalidTaskError as InvalidTask,
    )
    from django_tasks.exceptions import (
        TaskResultDoesNotExist,
    )
    from django_tasks.signals import task_enqueued, task_finished, task_started

__all__ = [
    "DEFAULT_TASK_BACKEND_ALIAS",
    "InvalidTask",
    "InvalidTaskBackend",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "default_task_backend",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
