"""What backend and target plugins provide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Backend:
    """A graph consumer: a model writer, an interpreter or a code generator.

    ``entry`` is the object that does the work (a function or class); its signature depends on
    the backend's role, given in ``role`` (``writer``, ``interpreter`` or ``codegen``).
    """

    name: str
    description: str
    role: str
    entry: Any = None


@dataclass(frozen=True)
class Target:
    """A CPU to generate code for: LLVM triple, CPU name and features."""

    name: str
    description: str
    triple: str
    cpu: str = "generic"
    features: str = ""
    options: dict = field(default_factory=dict)
