"""Shape ops in the whole-program entry: views and sizes, no kernels.

Outside the entry these run their numpy implementations (views); in the entry
a reshaped array is a reshape of a C-contiguous copy-or-view, copied when it is
a program output, which must not alias what it was made from.
"""

from __future__ import annotations

from ....ops.reduce import reduced_axes
from ..emit import Writer, shape_tuple
from .table import Lowering, register_lowering


def _reshaped(w: Writer, step, dims: list[str]) -> None:
    x, slot = f"s{step.inputs[0]}", step.outputs[0]
    copy = ".copy()" if slot in w.destination else ""
    w.emit(f"s{slot} = np.ascontiguousarray({x}).reshape({shape_tuple(dims)}){copy}")


def _reduced_size_entry(w: Writer, step) -> bool:
    node = step.node
    x = f"s{step.inputs[0]}"
    ndim = len(node.inputs[0].shape)
    axes = reduced_axes(ndim, node.attrs["axis"], node.attrs["exclude"])
    size = " * ".join(f"{x}.shape[{a}]" for a in axes) or "1"
    w.emit(f"s{step.outputs[0]} = np.full(1, {size}, np.{node.types[0].dtype.name})")
    return True


def _expand_dims_entry(w: Writer, step) -> bool:
    node = step.node
    x, ndim = f"s{step.inputs[0]}", len(step.node.inputs[0].shape)
    dims = [f"{x}.shape[{i}]" for i in range(ndim)]
    dims.insert(node.attrs["axis"] % (ndim + 1), "1")
    _reshaped(w, step, dims)
    return True


def _flatten_entry(w: Writer, step) -> bool:
    x, ndim = f"s{step.inputs[0]}", len(step.node.inputs[0].shape)
    if ndim < 1:
        return False
    rest = " * ".join(f"{x}.shape[{i}]" for i in range(1, ndim)) or "1"
    _reshaped(w, step, [f"{x}.shape[0]", rest])
    return True


def _reshape_entry(w: Writer, step) -> bool:
    """Reshape codes 0 (keep the input's dimension) and -1 (the rest), and plain
    sizes; the other codes (-2, -3, -4, reverse) keep the program step by step."""
    node = step.node
    x, ndim = f"s{step.inputs[0]}", len(node.inputs[0].shape)
    codes = node.attrs["shape"]
    if node.attrs["reverse"] or any(c < -1 for c in codes) or list(codes).count(-1) > 1:
        return False
    if any(c == 0 and i >= ndim for i, c in enumerate(codes)):
        return False
    dims = [f"{x}.shape[{i}]" if c == 0 else str(c) for i, c in enumerate(codes)]
    _reshaped(w, step, ["-1" if d == "-1" else d for d in dims])
    return True


def _reshape_like_entry(w: Writer, step) -> bool:
    """``lhs`` reshaped to the shape of ``rhs`` (a shape-only input: its slot holds
    an array of that shape, rerouted to whatever the program computes anyway)."""
    like, ndim = f"s{step.inputs[1]}", len(step.node.inputs[1].shape)
    if ndim == 0:
        return False
    _reshaped(w, step, [f"{like}.shape[{i}]" for i in range(ndim)])
    return True


register_lowering(Lowering("_reduced_size", entry=_reduced_size_entry))
register_lowering(Lowering("reshape_like", entry=_reshape_like_entry))
register_lowering(Lowering("expand_dims", entry=_expand_dims_entry))
register_lowering(Lowering("Flatten", entry=_flatten_entry))
register_lowering(Lowering("Reshape", entry=_reshape_entry))
