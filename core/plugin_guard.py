"""Plugins fail in one line: an exception raised inside an outside plugin's code becomes a
:class:`PluginError` naming the plugin item, its package and the error (``--debug`` prints the traceback).

The registry wraps every item an outside plugin registers (:func:`guard_item`): a pass's ``run``,
a frontend's ``claims``/``load``, a calibration method's ``create`` and every method of the
calibrators it creates.  Built-in items are not wrapped: their failures are ncnnc's bugs.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from ncnnc.core.errors import NcnncError


class PluginError(NcnncError):
    """An outside plugin raised an exception; ``detail`` keeps the traceback for ``--debug``."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def plugin_failure(label: str, error: BaseException) -> PluginError:
    """The one-line error for ``error`` raised in the plugin code ``label`` names, with its traceback."""
    text = str(error).strip().splitlines()
    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return PluginError(f"{label} failed: {type(error).__name__}" + (f": {text[0]}" if text else ""), detail)


class Guarded:
    """A plugin's callable whose exceptions (other than ``NcnncError`` and the ``passing`` types)
    become one-line :class:`PluginError` s.  Picklable when the callable is."""

    def __init__(self, label: str, fn: Callable[..., Any], passing: tuple[type[BaseException], ...] = ()) -> None:
        self.label, self.fn, self.passing = label, fn, passing

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the plugin's function."""
        try:
            return self.fn(*args, **kwargs)
        except (NcnncError, *self.passing):
            raise
        except Exception as e:
            raise plugin_failure(self.label, e) from e


class GuardedCreate:
    """A calibration method's ``create`` whose calibrators are checked against the contract and
    wrapped in :func:`guarded_calibrator`."""

    def __init__(self, label: str, method: str, create: Callable[..., Any]) -> None:
        self.label, self.method, self.create = label, method, create

    def __call__(self, **params: Any) -> Any:
        """Create the plugin's calibrator, check it, wrap it."""
        from ncnnc.core.calibration import check_calibrator

        inner = Guarded(self.label, self.create)(**params)
        check_calibrator(inner, self.method)
        return guarded_calibrator(self.label, inner)


def guarded_calibrator(label: str, inner: Any) -> Any:
    """``inner`` behind a :class:`~ncnnc.core.calibration.Calibrator` whose every call is guarded."""
    from ncnnc.core.calibration import Calibrator

    class GuardedCalibrator(Calibrator):
        """Forwards the driver's calls to the plugin's calibrator, turning its exceptions into one line."""

        def __init__(self) -> None:
            self.label, self.inner = label, inner

        @property
        def passes(self) -> int:  # type: ignore[override]
            """The plugin calibrator's pass count."""
            return self.inner.passes

        def _call(self, name: str, *args: Any, passing: tuple = ()) -> Any:
            return Guarded(f"{self.label} {name}()", getattr(self.inner, name), passing)(*args)

        def observe(self, batch: np.ndarray) -> None:
            """Forwarded (a ``ValueError`` keeps its meaning: unusable data, named by blob)."""
            self._call("observe", batch, passing=(ValueError,))

        def merge(self, other: Any) -> None:
            """Forwarded with the other shard's plugin calibrator."""
            self._call("merge", getattr(other, "inner", other))

        def threshold(self) -> float:
            """Forwarded."""
            return float(self._call("threshold"))

        def next_pass(self) -> None:
            """Forwarded."""
            self._call("next_pass")

        def replay_form(self, batch: np.ndarray) -> np.ndarray:
            """Forwarded."""
            return self._call("replay_form", batch)

        @property
        def absmax(self) -> float | None:  # type: ignore[override]
            """The plugin calibrator's absmax, if it keeps one as a number."""
            value = getattr(self.inner, "absmax", None)
            return float(value) if isinstance(value, (int, float, np.number)) else None

        def __reduce__(self):  # a local class: pickle it as the call that rebuilds it
            return guarded_calibrator, (self.label, self.inner)

    return GuardedCalibrator()


def guard_item(kind: str, item: Any, label: str) -> Any:
    """An outside plugin's registered item with its entry points into plugin code guarded."""
    if kind == "passes" and callable(getattr(item, "run", None)):
        item.run = Guarded(label, item.run)
        return item
    if kind == "frontends" and dataclasses.is_dataclass(item):
        return dataclasses.replace(item, claims=Guarded(label, item.claims), load=Guarded(label, item.load))
    if kind == "calibrators" and dataclasses.is_dataclass(item) and not isinstance(item.create, GuardedCreate):
        return dataclasses.replace(item, create=GuardedCreate(label, item.name, item.create))
    return item
