"""The one import of the native extension (``native/``, Rust): ``ext`` is the module, or
None when it is not built (the Python implementations then run; ``make test`` requires it
where cargo exists). Its types are ``native/bespoke_native.pyi``."""

from __future__ import annotations

__all__ = ["available", "ext"]

try:
    import bespoke_native as ext
except ImportError:  # not built
    ext = None  # type: ignore[assignment]


def available() -> bool:
    return ext is not None
