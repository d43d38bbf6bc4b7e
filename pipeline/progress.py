"""One progress helper for every long step: a tqdm.auto bar (a terminal bar, or a widget in
Jupyter when ipywidgets is installed) and, inside a Prefect flow or task run, a Prefect
progress artifact that follows it.

    with Progress(total=len(files), desc="fetch", unit="file") as bar:
        for f in files:
            ...
            bar.update()

    for block in progress(blocks, desc="hindcast", unit="block"):
        ...

The artifact side is a backend the flows layer installs (`use_artifacts`, from the flows'
tasks: flows/progress_artifacts.py), so this library never imports Prefect. The artifact
is updated at most every `ARTIFACT_EVERY_S` seconds (and at the end), and when a step ends
short of its total (an early stop, an error) its description says where it stopped instead
of reading 100 %.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

ARTIFACT_EVERY_S = 2.0

__all__ = ["ARTIFACT_EVERY_S", "Progress", "progress", "use_artifacts"]


def _artifact_key(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "progress-" + "-".join(part for part in cleaned.split("-") if part)[:80]


_backend = None  # see use_artifacts


def use_artifacts(backend) -> None:
    """Publish progress through `backend` (None: bars only). A backend has `active()` (True
    inside a run), `create(progress, key, description)` -> handle and
    `update(handle, progress, description)`."""
    global _backend
    _backend = backend


def _in_prefect_run() -> bool:
    return _backend is not None and bool(_backend.active())


class Progress:
    """A progress bar over `total` units, also published as a Prefect progress artifact
    (key ``progress-<desc>``, or `key`) when running under a Prefect flow.

    `bar=False` keeps only the artifact (for a step that draws its own terminal bar).
    """

    def __init__(self, total: float, desc: str, *, unit: str = "step", key: str | None = None,
                 initial: float = 0, bar: bool = True, unit_scale: bool = False) -> None:
        self.total, self.desc, self.unit = float(total), desc, unit
        self.n = float(initial)
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                         unit_scale=unit_scale, disable=None if bar else True,
                         dynamic_ncols=True)
        self._artifact = None
        self._last = 0.0
        self._closed = False
        self.note: str | None = None  # why the step ended short, shown with the final state
        if _in_prefect_run():
            self._artifact = self._create(key or _artifact_key(desc))

    # -- Prefect
    def _create(self, key: str):
        try:
            return _backend.create(self.percent, key, self._describe())
        except Exception:  # a progress display never fails the step it follows
            return None

    def _publish(self, *, final: bool = False) -> None:
        if self._artifact is None:
            return
        now = time.monotonic()
        if not final and now - self._last < ARTIFACT_EVERY_S:
            return
        self._last = now
        try:
            _backend.update(self._artifact, self.percent, self._describe(final=final))
        except Exception:
            self._artifact = None

    def _describe(self, *, final: bool = False) -> str:
        done = f"{_count(self.n)} of {_count(self.total)} {self.unit}s"
        if not final:
            return f"{self.desc}: {done}"
        if self.n >= self.total:
            return f"{self.desc}: finished, {done}"
        why = f": {self.note}" if self.note else ""
        return f"{self.desc}: stopped at {done} ({self.percent:.0f} %){why}"

    # -- the bar
    @property
    def percent(self) -> float:
        return round(100.0 * min(self.n / self.total, 1.0), 1) if self.total > 0 else 100.0

    def update(self, n: float = 1) -> None:
        """Advance by `n` units."""
        self.n += n
        self._bar.update(n)
        self._publish()

    def update_to(self, n: float) -> None:
        """Set the position to `n` units."""
        self.update(n - self.n)

    def set_postfix(self, **values) -> None:
        self._bar.set_postfix(**values)

    def close(self) -> None:
        """End the bar; the artifact then shows where the step ended."""
        if self._closed:
            return
        self._closed = True
        self._bar.close()
        self._publish(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def progress(iterable: Iterable, *, desc: str, unit: str = "step", total: float | None = None,
             key: str | None = None) -> Iterator:
    """Iterate `iterable` with a `Progress` bar (total from len() when not given)."""
    if total is None:
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit=unit, key=key) as bar:
        for item in iterable:
            yield item
            bar.update()
