"""Old import paths (before the package was split into `nn`, `search`, `deploy`, `data`) keep working.

``import larq_mobisearch.layers`` returns `larq_mobisearch.nn.layers` itself (not a copy), with a
`DeprecationWarning` naming the new path. One meta-path finder serves every moved module.
"""

from __future__ import annotations

import importlib
import importlib.abc
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


def install(package: str) -> None:
    """Register the finder for `package` (idempotent)."""
    if not any(isinstance(f, _MovedModuleFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder(package))
