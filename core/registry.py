"""The plugin manager: loads built-in and third-party plugins and answers "which X are there".

>>> from ncnnc.core.registry import registry
>>> registry().get("frontends", "ncnn").name
'ncnn'
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

import pluggy

from ncnnc.core import hookspecs
from ncnnc.core.custom_layers import register_implementation
from ncnnc.core.errors import NcnncError
from ncnnc.core.params import register_schema
from ncnnc.core.plugin_guard import Guarded, guard_item, plugin_failure

KINDS = ("frontends", "passes", "calibrators", "refiners", "backends", "targets", "layer_types",
         "layer_implementations")

BUILTIN_PLUGINS = {
    "ncnnc.frontends.ncnn": ("frontends",),
    "ncnnc.frontends.caffe": ("frontends",),
    "ncnnc.frontends.onnx": ("frontends",),
    "ncnnc.backends.ncnn_writer": ("backends",),
    "ncnnc.backends.numpy": ("backends",),
    "ncnnc.backends.llvm": ("backends", "targets"),
    "ncnnc.plugins.passes.fold_batchnorm": ("passes",),
    "ncnnc.plugins.passes.fold_binaryop": ("passes",),
    "ncnnc.plugins.passes.replace": ("passes",),
    "ncnnc.plugins.passes.fuse_activation": ("passes",),
    "ncnnc.plugins.passes.eliminate": ("passes",),
    "ncnnc.plugins.passes.canonical": ("passes",),
    "ncnnc.plugins.calibrators.kl": ("calibrators",),
    "ncnnc.plugins.calibrators.aciq": ("calibrators",),
    "ncnnc.plugins.calibrators.minmax": ("calibrators",),
    "ncnnc.plugins.calibrators.percentile": ("calibrators",),
    "ncnnc.plugins.calibrators.mse": ("calibrators",),
    "ncnnc.plugins.calibrators.eq": ("calibrators",),
    "ncnnc.plugins.passes.equalize": ("passes",),
    "ncnnc.plugins.refiners.activation_scale": ("refiners",),
    "ncnnc.plugins.refiners.adaround": ("refiners",),
    "ncnnc.plugins.refiners.bias_correction": ("refiners",),
}
"""Modules of the built-in plugins, with the kinds each provides; each has ``@hookimpl`` functions like
any outside plugin.  A module is imported the first time one of its kinds is asked for, so a command
imports only the plugins it uses (a test checks the kinds against the modules' hooks)."""


@dataclass(frozen=True)
class Registered:
    """One registered item and where it came from (``ncnnc`` for built-ins, else the distribution)."""

    kind: str
    item: Any
    source: str

    @property
    def name(self) -> str:
        """The item's name (a layer type's ``type``)."""
        return getattr(self.item, "name", None) or self.item.type

    @property
    def description(self) -> str:
        """The item's one-line description."""
        return getattr(self.item, "description", "") or getattr(self.item, "doc", "")


class Registry:
    """All registered plugins, queried by kind and name."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if load_entry_points:
            try:
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            except Exception as e:  # an outside plugin failed to import: name it, in one line
                raise _load_failure(e) from e
        self._cache: dict[str, list[Registered]] = {}

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module at run time (tests, notebooks)."""
        self.pm.register(plugin, name=name)
        self._cache.clear()
        self.all("layer_types")  # a plugin's layer types are known as soon as it is registered
        self.all("layer_implementations")

    def unregister(self, plugin: object) -> None:
        """Remove a plugin registered with :meth:`register`."""
        self.pm.unregister(plugin)
        self._cache.clear()

    def _source_of(self, plugin: object) -> str:
        for p, dist in self.pm.list_plugin_distinfo():
            if p is plugin:
                return f"{dist.project_name} {dist.version}"
        name = self.pm.get_name(plugin) or ""
        return "ncnnc (built-in)" if name in BUILTIN_PLUGINS else (name or "registered at run time")

    def all(self, kind: str) -> list[Registered]:
        """Every item of a kind, built-ins first, in registration order."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}")
        if kind not in self._cache:
            self._load_builtins(kind)
            hook = getattr(self.pm.hook, f"ncnnc_{kind}")
            items: list[Registered] = []
            for impl in self._builtins_first(hook.get_hookimpls()):
                source = self._source_of(impl.plugin)
                if self.pm.get_name(impl.plugin) in BUILTIN_PLUGINS:
                    items += [Registered(kind, item, source) for item in impl.function() or []]
                    continue
                hook_label = f"plugin {self.pm.get_name(impl.plugin)} ({source})"
                for item in Guarded(hook_label, impl.function)() or []:
                    label = f"plugin {_item_name(item)} ({source})"
                    items.append(Registered(kind, guard_item(kind, item, label), source))
            if kind == "layer_types":
                for reg in items:
                    register_schema(reg.item)
            if kind == "layer_implementations":
                for reg in items:
                    register_implementation(reg.item)
            self._cache[kind] = items
        return self._cache[kind]

    def _load_builtins(self, kind: str) -> None:
        """Import and register the built-in plugin modules that provide ``kind`` (once each)."""
        for modname, kinds in BUILTIN_PLUGINS.items():
            if kind in kinds and self.pm.get_plugin(modname) is None:
                self.pm.register(importlib.import_module(modname), name=modname)

    def _builtins_first(self, impls: list[Any]) -> list[Any]:
        """Hook implementations with the built-ins first, in :data:`BUILTIN_PLUGINS` order, then the
        others in registration order (pluggy lists them in registration order, calls them LIFO)."""
        order = {name: i for i, name in enumerate(BUILTIN_PLUGINS)}
        return sorted(impls, key=lambda impl: order.get(self.pm.get_name(impl.plugin), len(order)))

    def names(self, kind: str) -> list[str]:
        """The names of every item of a kind."""
        return [r.name for r in self.all(kind)]

    def get(self, kind: str, name: str) -> Any:
        """The item of a kind with this name; a user error listing the choices if there is none."""
        for reg in self.all(kind):
            if reg.name == name:
                return reg.item
        choices = ", ".join(self.names(kind)) or "none"
        raise NcnncError(f"no {kind[:-1].replace('_', ' ')} named {name!r} (available: {choices})")


def _item_name(item: Any) -> str:
    return str(getattr(item, "name", None) or getattr(item, "type", "?"))


def _load_failure(error: Exception) -> NcnncError:
    """A one-line error naming the entry point of group ``ncnnc`` that fails to load, and its package."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=hookspecs.PROJECT):
        try:
            ep.load()
        except Exception as e:
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown package"
            return plugin_failure(f"plugin {ep.name} ({dist}): loading {ep.value}", e)
    return plugin_failure(f"the plugins of entry-point group {hookspecs.PROJECT!r}", error)


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (built-ins plus installed entry points)."""
    reg = Registry()
    reg.all("layer_types")
    reg.all("layer_implementations")
    return reg
