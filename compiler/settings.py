"""The compiler's settings: read from the environment once, overridable in a block.

Every ``SYMGRAD_*`` variable the compiler honours is read here, on first use,
into one :class:`Settings` object; the rest of the compiler reads that object.
Tests and users change it for a block with :func:`override`::

    with settings.override(compile="sync", backend="interpreter"):
        ...

| variable | field | default |
|---|---|---|
| ``SYMGRAD_BACKEND`` | ``backend`` | ``compiled`` |
| ``SYMGRAD_COMPILE`` | ``compile`` | ``background`` (or ``sync``) |
| ``SYMGRAD_COMPILE_AFTER`` | ``compile_after`` | 2 |
| ``SYMGRAD_COMPILE_AFTER_SECONDS`` | ``compile_after_seconds`` | 1.0 (see tiering.py) |
| ``SYMGRAD_PRINT_PASSES`` | ``print_passes`` | off |
| ``SYMGRAD_CACHE`` | ``disk_cache`` | on |
| ``SYMGRAD_CACHE_DIR`` | ``cache_dir`` | ``$XDG_CACHE_HOME/symgrad`` or ``~/.cache/symgrad`` |
| ``SYMGRAD_NUM_THREADS`` | ``num_threads`` | the cores |
| ``SYMGRAD_PARALLEL_MIN`` | ``parallel_min`` | 262144 |
| ``SYMGRAD_WIDE_VECTORS`` | ``wide_vectors`` | on |
| ``SYMGRAD_ADAPT_THREADS`` | ``adapt_threads`` | on (OpenBLAS's threads follow free cores) |
| ``SYMGRAD_OWN_PRODUCTS`` | ``own_products`` | on (see blas_kernels.py) |
| ``SYMGRAD_SPIN`` | ``spin`` | on (idle kernel threads spin ~3 ms before sleeping) |
| ``SYMGRAD_KEEP_MEMORY`` | ``keep_memory`` | on (freed arrays' memory kept for reuse) |
| ``SYMGRAD_BLOCKED_LAYOUT`` | ``blocked_layout`` | on (see passes/blocked_layout.py) |
| ``SYMGRAD_PROGRAM_CACHE_ENTRIES`` | ``program_cache_entries`` | 1024 |
| ``SYMGRAD_PROGRAM_CACHE_BYTES`` | ``program_cache_bytes`` | 256 MiB |
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_OFF = ("0", "false", "no", "off")


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in _OFF


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    configured = env.get("SYMGRAD_CACHE_DIR")
    if configured:
        return Path(configured)
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symgrad"


def _threads(value: str | None) -> int | None:
    if not value:
        return None
    count = int(value)
    if count < 1:
        raise ValueError(f"SYMGRAD_NUM_THREADS must be at least 1, not {value!r}")
    return count


@dataclass
class Settings:
    """Everything the compiler can be told: see the module's table.

    ``chosen_backend`` is :func:`~symgrad_compiler.backends.set_backend`'s
    choice, which wins over ``backend`` (the environment's) while not None.
    """

    backend: str = "compiled"
    chosen_backend: str | None = None
    compile: str = "background"
    compile_after: int = 2
    compile_after_seconds: float = 1.0
    print_passes: bool = False
    disk_cache: bool = True
    cache_dir: Path = dataclasses.field(default_factory=lambda: _default_cache_dir(os.environ))
    num_threads: int | None = None
    parallel_min: int = 1 << 18
    wide_vectors: bool = True
    adapt_threads: bool = True
    own_products: bool = True
    spin: bool = True
    keep_memory: bool = True
    blocked_layout: bool = True
    program_cache_entries: int = 1024
    program_cache_bytes: int = 256 << 20

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment ``env`` (default ``os.environ``) asks for."""
        env = os.environ if env is None else env
        compile_mode = env.get("SYMGRAD_COMPILE", "background") or "background"
        if compile_mode not in ("background", "sync"):
            raise ValueError(
                f"SYMGRAD_COMPILE must be 'background' or 'sync', not {compile_mode!r}"
            )
        return cls(
            backend=env.get("SYMGRAD_BACKEND", "compiled") or "compiled",
            compile=compile_mode,
            compile_after=int(env.get("SYMGRAD_COMPILE_AFTER", "2")),
            compile_after_seconds=float(env.get("SYMGRAD_COMPILE_AFTER_SECONDS", "1.0")),
            print_passes=_flag(env.get("SYMGRAD_PRINT_PASSES"), False),
            disk_cache=_flag(env.get("SYMGRAD_CACHE"), True),
            cache_dir=_default_cache_dir(env),
            num_threads=_threads(env.get("SYMGRAD_NUM_THREADS")),
            parallel_min=int(env.get("SYMGRAD_PARALLEL_MIN", str(1 << 18))),
            wide_vectors=_flag(env.get("SYMGRAD_WIDE_VECTORS"), True),
            adapt_threads=_flag(env.get("SYMGRAD_ADAPT_THREADS"), True),
            own_products=_flag(env.get("SYMGRAD_OWN_PRODUCTS"), True),
            spin=_flag(env.get("SYMGRAD_SPIN"), True),
            keep_memory=_flag(env.get("SYMGRAD_KEEP_MEMORY"), True),
            blocked_layout=_flag(env.get("SYMGRAD_BLOCKED_LAYOUT"), True),
            program_cache_entries=int(env.get("SYMGRAD_PROGRAM_CACHE_ENTRIES", "1024")),
            program_cache_bytes=int(env.get("SYMGRAD_PROGRAM_CACHE_BYTES", str(256 << 20))),
        )


_current: Settings | None = None


def current() -> Settings:
    """The settings in force (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = Settings.from_environment()
    return _current


def reload(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment again (keeping :func:`set_backend`'s choice)."""
    global _current
    chosen = None if _current is None else _current.chosen_backend
    _current = Settings.from_environment(env)
    _current.chosen_backend = chosen
    return _current


@contextlib.contextmanager
def override(**changes: Any) -> Iterator[Settings]:
    """Change some settings for the ``with`` block, restoring them after.

    >>> with override(compile_after=5):
    ...     current().compile_after
    5
    """
    settings = current()
    unknown = set(changes) - {f.name for f in dataclasses.fields(settings)}
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}")
    saved = {name: getattr(settings, name) for name in changes}
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        yield settings
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
