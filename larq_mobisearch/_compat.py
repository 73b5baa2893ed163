"""Old import paths (before the package was split into `nn`, `search`, `deploy`, `data`) keep working.

``import larq_mobisearch.layers`` returns `larq_mobisearch.nn.layers` itself (not a copy), with a
`DeprecationWarning` naming the new path. One meta-path finder serves every moved module.

Names that moved out of a module that still exists (`MOVED_NAMES`, e.g. ``nn.layers.custom_objects``, now in
``nn.registry``) stay reachable from the old module, with a `DeprecationWarning`: a second finder loads that
module as usual and gives it a module ``__getattr__`` that forwards them (so the old module itself need not
import the new one, which may sit above it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

#: old module (under larq_mobisearch) -> new module (under larq_mobisearch)
MOVED = {
    "quantizers": "nn.quantizers",
    "layers": "nn.layers",
    "specs": "nn.specs",
    "space": "nn.space",
    "models": "nn.models",
    "supernet": "nn.supernet",
    "batchnorm": "nn.batchnorm",
    "costs": "search.costs",
    "export": "deploy",
    # The former flat deploy modules (split into deploy/*): served by the package, which re-exports them all.
    "latency": "deploy",
    "devices": "deploy",
    "deploy.latency": "deploy",
    "deploy.devices": "deploy",
}


#: module (under larq_mobisearch) -> {name that moved out of it: module it lives in now}
MOVED_NAMES = {
    "nn.layers": {"custom_objects": "nn.registry"},
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):  # the target module is already executed
        pass


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        prefix = self.package + "."
        if not fullname.startswith(prefix) or fullname[len(prefix):] not in MOVED:
            return None
        new = prefix + MOVED[fullname[len(prefix):]]
        warnings.warn(f"{fullname} moved to {new}; the old path will be removed in a future release",
                      DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


class _ForwardMovedNames(importlib.abc.Loader):
    """The module's own loader, then a module ``__getattr__`` for the names that moved out of it."""

    def __init__(self, loader, names, package: str):
        self.loader, self.names, self.package = loader, names, package

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        own = module.__dict__.get("__getattr__")
        names, package = self.names, self.package

        def __getattr__(name):
            if name in names:
                new = f"{package}.{names[name]}"
                warnings.warn(f"{module.__name__}.{name} moved to {new}.{name}; the old path will be removed in a "
                              f"future release", DeprecationWarning, stacklevel=2)
                return getattr(importlib.import_module(new), name)
            if own is not None:
                return own(name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = __getattr__

    def __getattr__(self, name):  # get_source, get_filename, ... of the module's own loader
        return getattr(self.loader, name)


class _MovedNamesFinder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        prefix = self.package + "."
        names = MOVED_NAMES.get(fullname[len(prefix):]) if fullname.startswith(prefix) else None
        if not names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ForwardMovedNames(spec.loader, names, self.package)
        return spec


def install(package: str) -> None:
    """Register the finders for `package` (idempotent)."""
    if not any(isinstance(f, _MovedModuleFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder(package))
    if not any(isinstance(f, _MovedNamesFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedNamesFinder(package))  # before the path finder that would load it plainly
