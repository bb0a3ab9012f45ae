"""Writing generated source: the whole-program entry's line writer and helpers
shared by the entry (:mod:`.entry`) and the lowerings' entry emitters."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    """A compiled fast path: ``runner(args, out=None)`` returns the outputs, or
    None where the general path must run; ``runner.specialised(args)`` gives an
    even cheaper ``fast(args, outs=None)`` for inputs exactly like ``args``."""

    def __call__(self, args: Sequence[Any], out: Sequence[Any] | None = None) -> Any: ...

    specialised: Callable[[Sequence[Any]], Callable[..., Any] | None]


class Writer:
    """Accumulates the entry's lines; names arrays by slot (``s12``).

    ``destination`` maps the slots that are program outputs to the parameter
    holding the caller's buffer for them; ``bail`` is the statement that gives
    up (the caller then runs the program step by step).
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.destination: dict[int, str] = {}
        self.bail = ""
        # object-mode functions the entry calls, by name: their source; and the
        # imports of the Python functions they call (see object_mode)
        self.helpers: dict[str, str] = {}
        self.imports: dict[str, str] = {}
        # whether the entry links our float32 product tiles in any case (see
        # lowerings.products.links_tiles): then its small products take them too
        self.links_tiles = False

    def emit(self, line: str) -> None:
        """Add one line to the entry's body."""
        self.lines.append("    " + line)

    def object_mode(
        self, name: str, params: list[str], calls: Callable, body: str, returns: str = ""
    ) -> str:
        """Define (once per entry) a compiled function ``name(*params)`` that runs
        the Python statement ``body`` in numba's object mode, and return its name;
        ``body`` calls the function ``calls`` by its name (the entry's module
        imports it: see :attr:`imports`); with ``returns`` (a numba type), the
        function returns what ``body`` assigns to ``r``.
        The entry calls such a function to split a big loop over threads
        (``threads.run_split``, ``threads.run_rows``) and stay one call. (Object
        mode in a function of its own: numba lifting it out of a long function
        with branches produced invalid LLVM; and without ``nogil``, of no use
        to code that takes the interpreter lock, and about which numba warns.)"""
        self.imports[calls.__name__] = f"from {calls.__module__} import {calls.__name__}"
        if name not in self.helpers:
            self.helpers[name] = "\n".join(
                [
                    "@_object_jit",
                    f"def {name}({', '.join(params)}):",
                    f"    with numba.objmode({f'r={returns!r}' if returns else ''}):",
                    f"        {body}",
                    *(["    return r"] if returns else []),
                ]
            )
        return name

    def library_call(self, step, kernel: str) -> str | None:
        """A call, by source, of a function that computes ``step``'s one output as
        the step runner does (``lowerings.table.run_library``, from object mode:
        the op's threaded paths); None where the step's attributes cannot be
        written as a Python literal."""
        attrs = repr(dict(sorted(step.node.attrs.items())))
        try:
            if ast.literal_eval(attrs) != step.node.attrs:
                return None
        except (ValueError, SyntaxError):  # a value with no literal (inf, an object)
            return None
        output = step.node.types[0]
        layout = ", ".join([":"] * (len(output.shape) - 1) + ["::1"])
        ins = [f"a{i}" for i in range(len(step.inputs))]
        from .lowerings.table import run_library  # (the lowerings import this module)

        name = self.object_mode(
            f"library_{step.node.op.name.lstrip('_')}_{step.outputs[0]}",
            ins,
            run_library,
            f"r = run_library({step.node.op.name!r}, {kernel}, {shape_tuple(ins)}, {attrs}, "
            f"{output.dtype.name!r})",
            returns=f"{output.dtype.name}[{layout}]",
        )
        return f"{name}({', '.join(f's{i}' for i in step.inputs)})"

    def rows_splitter(self, kernel: str) -> str:
        """A function ``(head, rows, tail, work)`` that runs the row kernel
        ``kernel(*head, lo, hi, *tail)`` over ``rows`` rows on threads."""
        from .threads import run_rows

        return self.object_mode(
            f"rows_{kernel}",
            ["head", "rows", "tail", "work"],
            run_rows,
            f"run_rows({kernel}, head, rows, tail, work)",
        )

    @contextlib.contextmanager
    def indented(self) -> Iterator[None]:
        """Lines emitted in the block are one level deeper (a branch's body)."""
        lines = self.lines
        self.lines = []
        try:
            yield
        finally:
            block, self.lines = self.lines, lines
            self.lines.extend("    " + line for line in block)

    def give_up_if(self, condition: str) -> None:
        """Add a test that gives up when ``condition`` holds at run time."""
        self.emit(f"if {condition}:")
        self.emit(f"    {self.bail}")

    def result(self, slot: int, shape: str, dtype: np.dtype) -> None:
        """Bind ``s<slot>`` to the caller's buffer for it when it has ``shape``,
        else to a new array: the one rule for where an output goes."""
        fresh = f"np.empty({shape}, np.{dtype.name})"
        target = self.destination.get(slot)
        if target is None:
            self.emit(f"s{slot} = {fresh}")
        else:
            self.emit(f"s{slot} = {target} if {target}.shape == {shape} else {fresh}")


def shape_tuple(parts: list[str]) -> str:
    """Source of a tuple of the expressions ``parts``."""
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def runtime_value(value: Any) -> str:
    """Source of the constant ``value`` (an int, a bool, or a tuple of them) that
    numba types as a runtime value, not a literal.

    numba compiles a function called from compiled code once for each distinct
    literal argument: a convolution's kernel size, a pooling's mode or an RNN's
    hidden size written as ``3`` gave each distinct value its own compile of the
    whole library (about 20 s for a convolution's forward on an empty cache), and
    another beside the step runner's, which passes runtime values. Written through
    ``np.int64``/``np.bool_``, every value shares the step runner's compile.
    """
    if isinstance(value, tuple):
        return shape_tuple([runtime_value(v) for v in value])
    if isinstance(value, (bool, np.bool_)):
        return f"np.bool_({bool(value)})"
    if isinstance(value, (int, np.integer)):
        return f"np.int64({int(value)})"
    raise TypeError(f"runtime_value: an int, a bool or a tuple of them, got {value!r}")


def empty_of(dtype: np.dtype, ndim: int) -> str:
    """Source of an empty array of ``dtype`` and ``ndim`` dimensions."""
    return f"np.empty({shape_tuple(['0'] * ndim) if ndim else '()'}, np.{dtype.name})"
