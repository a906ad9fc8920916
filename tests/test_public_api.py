"""Every module states its public API in `__all__`, and `__all__` is complete and true."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

PACKAGES = ["ledger", "producers", "projections", "alerts", "ops"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__, prefix=f"{package}."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_all_is_complete_and_true(name: str) -> None:
    module = importlib.import_module(name)
    defined = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == name
    }
    exported = getattr(module, "__all__", None)
    if not defined and exported is None:
        return  # a module of commands or constants only
    assert exported is not None, f"{name} has public names {sorted(defined)} but no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names undefined {missing}"
    unlisted = sorted(defined - set(exported))
    assert not unlisted, f"{name} defines public {unlisted} outside __all__ (export or _hide)"
