"""Shape ops in the whole-program entry: views, sizes, joins and cuts, no kernels.

Outside the entry these run their numpy implementations; in the entry a reshaped,
sliced or cut array is a C-contiguous copy-or-view, copied when it is a program
output, which must not alias what it was made from (no step of the entry writes
into its inputs, so a view is safe otherwise). A join (``Concat``, Gluon's
``_rnn_param_concat``) and a broadcast write into a new array or the caller's
buffer. Sizes that numpy would reject (pieces that disagree off the joined axis,
an axis that does not broadcast) give the program back to the step runner, whose
numpy implementation raises the error.
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
    sizes, read from the left or (``reverse``) from the right; the other codes
    (-2, -3, -4) keep the program step by step."""
    node = step.node
    x, ndim = f"s{step.inputs[0]}", len(node.inputs[0].shape)
    codes = node.attrs["shape"]
    if any(c < -1 for c in codes) or list(codes).count(-1) > 1:
        return False
    # reverse aligns the codes with the input's last axes: (-1, 0) flattens all
    # but the last axis whatever the rank
    shift = ndim - len(codes) if node.attrs["reverse"] else 0
    if any(c == 0 and not 0 <= i + shift < ndim for i, c in enumerate(codes)):
        return False
    dims = [f"{x}.shape[{i + shift}]" if c == 0 else str(c) for i, c in enumerate(codes)]
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


def _axis(node_axis: int, ndim: int) -> int | None:
    """``node_axis`` counted from the front, or None if out of range."""
    return node_axis % ndim if -ndim <= node_axis < ndim and ndim > 0 else None


def _along(axis: int, bounds: str) -> str:
    """An index taking ``bounds`` (a slice's source) on ``axis`` and all of the
    axes before it."""
    return ":, " * axis + bounds


def _concat_entry(w: Writer, step) -> bool:
    """The inputs copied one after another into the result, along ``dim``."""
    node = step.node
    ndim = len(node.types[0].shape)
    axis = _axis(node.attrs["dim"], ndim)
    if axis is None:
        return False
    pieces = [f"s{i}" for i in step.inputs]
    first, slot = pieces[0], step.outputs[0]
    for piece in pieces[1:]:
        for a in range(ndim):
            if a != axis:
                w.give_up_if(f"{piece}.shape[{a}] != {first}.shape[{a}]")
    total = " + ".join(f"{p}.shape[{axis}]" for p in pieces)
    dims = [f"({total})" if a == axis else f"{first}.shape[{a}]" for a in range(ndim)]
    w.result(slot, shape_tuple(dims), node.types[0].dtype)
    offset = f"o{slot}"
    w.emit(f"{offset} = 0")
    for piece in pieces:
        length = f"{piece}.shape[{axis}]"
        w.emit(f"s{slot}[{_along(axis, f'{offset}:{offset} + {length}')}] = {piece}")
        w.emit(f"{offset} += {length}")
    return True


def _split_like_entry(w: Writer, step) -> bool:
    """Pieces of the first input along ``axis``, each as long as the matching
    further input, the last one to the end (numpy's ``split`` at those bounds)."""
    node = step.node
    ndim = len(node.inputs[0].shape)
    axis = _axis(node.attrs["axis"], ndim)
    if axis is None:
        return False
    g, likes = f"s{step.inputs[0]}", [f"s{i}" for i in step.inputs[1:]]
    offset = f"o{step.outputs[0]}"
    w.emit(f"{offset} = 0")
    for k, (slot, like) in enumerate(zip(step.outputs, likes)):
        last = k == len(likes) - 1
        length = f"{like}.shape[{axis}]"
        bounds = f"{offset}:" if last else f"{offset}:{offset} + {length}"
        copy = ".copy()" if slot in w.destination else ""
        w.emit(f"s{slot} = np.ascontiguousarray({g}[{_along(axis, bounds)}]){copy}")
        if not last:
            w.emit(f"{offset} += {length}")
    return True


def _slice_axis_entry(w: Writer, step) -> bool:
    """``[begin, end)`` on one axis, as Python slices it (attrs are literals)."""
    node = step.node
    ndim = len(node.inputs[0].shape)
    axis = _axis(node.attrs["axis"], ndim)
    if axis is None:
        return False
    begin, end = node.attrs["begin"], node.attrs["end"]
    bounds = f"{begin}:{'' if end is None else end}"
    slot = step.outputs[0]
    copy = ".copy()" if slot in w.destination else ""
    w.emit(f"s{slot} = np.ascontiguousarray(s{step.inputs[0]}[{_along(axis, bounds)}]){copy}")
    return True


def _broadcast_to_entry(w: Writer, step) -> bool:
    """The input broadcast into a new array of the target shape (0 in the target
    keeps the input's size)."""
    node = step.node
    x, ndim = f"s{step.inputs[0]}", len(node.inputs[0].shape)
    target = node.attrs["shape"]
    lead = len(target) - ndim
    if lead < 0:
        return False
    dims = [
        f"{x}.shape[{i - lead}]" if size == 0 and i >= lead else str(size)
        for i, size in enumerate(target)
    ]
    for i in range(ndim):
        w.give_up_if(f"{x}.shape[{i}] != 1 and {x}.shape[{i}] != {dims[i + lead]}")
    slot = step.outputs[0]
    w.result(slot, shape_tuple(dims), node.types[0].dtype)
    w.emit(f"s{slot}[...] = {x}")
    return True


register_lowering(Lowering("Concat", entry=_concat_entry))
register_lowering(Lowering("_rnn_param_concat", entry=_concat_entry))
register_lowering(Lowering("_split_like", entry=_split_like_entry))
register_lowering(Lowering("slice_axis", entry=_slice_axis_entry))
register_lowering(Lowering("broadcast_to", entry=_broadcast_to_entry))
register_lowering(Lowering("_reduced_size", entry=_reduced_size_entry))
register_lowering(Lowering("reshape_like", entry=_reshape_like_entry))
register_lowering(Lowering("expand_dims", entry=_expand_dims_entry))
register_lowering(Lowering("Flatten", entry=_flatten_entry))
register_lowering(Lowering("Reshape", entry=_reshape_entry))
