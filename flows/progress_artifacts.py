"""Prefect progress artifacts behind pipeline.progress: each flow installs this backend,
so the library's progress bars also show as progress artifacts of the running flow/task."""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

__all__ = ["install"]


class _PrefectProgress:
    @staticmethod
    def active() -> bool:
        return TaskRunContext.get() is not None or FlowRunContext.get() is not None

    @staticmethod
    def create(progress: float, key: str, description: str):
        return create_progress_artifact(progress=progress, key=key, description=description)

    @staticmethod
    def update(handle, progress: float, description: str) -> None:
        update_progress_artifact(handle, progress=progress, description=description)


def install() -> None:
    """Make pipeline.progress publish Prefect progress artifacts (idempotent)."""
    from pipeline.progress import use_artifacts

    use_artifacts(_PrefectProgress)
