"""User-facing errors: each one renders as a single line naming the file, the place and the problem."""

from __future__ import annotations


class NcnncError(Exception):
    """A problem with the user's input or request, reported as one line and exit status 2.

    ``path`` is the file concerned, ``where`` the place inside it (``line 12``, ``layer conv1``),
    ``message`` what is wrong.  ``str(err)`` gives ``path:where: message``.
    """

    def __init__(self, message: str, path: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.where = where

    def __reduce__(self):  # pickled whole (path, where and a subclass's fields), e.g. from worker processes
        return (self.__class__.__new__, (self.__class__,), self.__dict__)

    def __str__(self) -> str:
        parts = [p for p in (self.path, self.where) if p]
        return ": ".join([*parts, self.message])


class ModelFormatError(NcnncError):
    """A model file (param, bin, prototxt, onnx ...) is malformed or inconsistent."""


class GraphError(NcnncError):
    """A graph violates the IR's invariants (unknown blob, second producer, cycle ...)."""


class UnsupportedError(NcnncError):
    """Something valid but not supported (an operator, a layer type, a parameter combination)."""
