"""``blocked_layouts``: convolutions and what lies between them on the
channel-blocked layout.

On a CPU with 512-bit vectors a convolution that reads its image as (N, C / 16,
H, W, 16), a position's 16 channels one vector, runs 1.0-2.6x faster than
the NCHW routes on 1x1 layers and 0.8-1.8x on 3x3 ones (docs/benchmarks.md,
twenty-eighth session); converting each layer's input and output would cost
more than that, so the layout is carried from one convolution to the next
through the ops between them. The pass:

1. takes every convolution it can run blocked (``Convolution`` and its two
   gradient ops, 2-D, stride 1, no dilation, one group, float32, channels and
   filters multiples of 16) and wins on: weights of at most ``MAX_WEIGHTS``
   values; no *region* it touches (components joined through max poolings,
   step 2) holding an elementwise op with a per-channel operand (BatchNorm's
   loops run slower on the layout: ``_reads_per_channel``); and, for a 1x1
   one, a region it touches holding one with a bigger kernel (a 1x1 layer
   between layers the pass leaves, MobileNet's pointwise ones between
   depthwise layers, would convert on both sides for less than it gains).
   Their images, outputs and output gradients are its *ports*;
2. groups the program's values into components joined by the ops that carry
   a layout unchanged: elementwise ops (their same-shaped operands and result;
   a per-channel (1, C, 1, 1) or a size-one operand goes along), ``Concat``
   and ``_split_like`` along the channels (every part a multiple of 16);
3. puts every component holding a port on the blocked layout: the
   convolutions become ``_blocked_conv``, ``_blocked_conv_data_grad`` and
   ``_blocked_conv_weight_grad``, the ops between them their own blocked
   forms (a per-channel sum or mean, as BatchNorm's statistics and the bias
   gradients take, sums the blocked value's axes 0, 2 and 3; a sum of every
   value is the same sum; a max pooling whose values are all blocked, and its
   gradient, ``_blocked_pooling``), and ``_to_blocked`` / ``_from_blocked``
   convert where a component meets any other op, a graph input or an
   output. A pooling is no port: a pooling between a convolution the pass
   cannot take and one it can (SqueezeNet's first) converts its smaller side.

The values are the program's values: every blocked op computes what its NCHW
counterpart computes, in another order of the same sums. The pass is on by
default; ``SYMGRAD_BLOCKED_LAYOUT=0`` (``settings.blocked_layout``) turns it
off, and then, or with no convolution to take, the graph is returned as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import settings
from ..graph import ProgramGraph
from ..ir import Entry, Node
from ..registry import make_node
from .fuse import data_inputs, is_elementwise

BLOCK = 16
_FLOAT32 = np.dtype(np.float32)
_FLOATS = (_FLOAT32, np.dtype(np.float64))
_CONVOLUTIONS = ("Convolution", "_conv_data_grad", "_conv_weight_grad")
_CHANNEL_SUMS = ("sum", "mean")

Key = tuple[int, int]

# The largest weight (filters x channels x taps) the layout takes a convolution
# for: its tiles re-read the weights for every group of images, which from about
# a core's cache (1 MiB of float32) on runs at half the NCHW routes' speed
# (ResNet-18's 256 -> 256 3x3 layers at 14x14, 590K values: 0.82x; its 128 ->
# 128 ones at 28x28, 147K: 1.08x; docs/benchmarks.md, twenty-eighth session)
MAX_WEIGHTS = 1 << 18


def _key(entry: Entry) -> Key:
    return (id(entry.node), entry.index)


def _blockable(entry: Entry) -> bool:
    """Whether a value can be held blocked: float (N, C, H, W), C a multiple of
    16 (float64 too: BatchNorm's statistics sum a float64 copy of the data)."""
    shape = entry.shape
    return entry.dtype in _FLOATS and len(shape) == 4 and shape[1] % BLOCK == 0


def convolution_ports(node: Node) -> list[Entry] | None:
    """The values a convolution step reads and writes blocked (its images,
    outputs and output gradients), or None where it cannot run blocked."""
    if node.is_variable or node.op.name not in _CONVOLUTIONS:
        return None
    attrs = node.attrs
    kernel, pad = tuple(attrs["kernel"]), tuple(attrs.get("pad") or (0, 0))
    if (
        len(kernel) != 2
        or len(pad) != 2
        or any(s != 1 for s in attrs.get("stride") or (1, 1))
        or any(d != 1 for d in attrs.get("dilate") or (1, 1))
        or attrs["num_group"] != 1
        or attrs.get("layout") not in (None, "NCHW")
    ):
        return None
    name = node.op.name
    if name == "Convolution":
        ports = [node.inputs[0], Entry(node, 0)]
    elif name == "_conv_data_grad":
        if any(p > k - 1 for p, k in zip(pad, kernel)):  # (the adjoint's padding)
            return None
        ports = [node.inputs[0], node.inputs[2], Entry(node, 0)]
    else:
        ports = [node.inputs[0], node.inputs[1]]
    if not all(_blockable(p) and p.dtype == _FLOAT32 for p in ports):
        return None
    if node.types[0].dtype != _FLOAT32:
        return None
    return ports


def _reads_per_channel(node: Node) -> bool:
    """Whether an elementwise op reads a per-channel (1, C, 1, 1) operand, as
    BatchNorm's normalising and its gradient do.

    Such loops on the layout (codegen's periodic loops: the operand a tile of
    its 16 lanes, the sums kept per lane in memory) ran 1.1-1.7x slower than
    their NCHW loops, where the operand is one number a plane (ResNet-18, B=8:
    42 against 32 ms a step); that took more than its convolutions gained
    there, so a region holding one stays NCHW."""
    if not is_elementwise(node):
        return False
    channels = node.types[0].shape[1]
    return any(_per_channel(e, channels) for e in data_inputs(node))


def _favoured(node: Node) -> bool:
    """Whether the layout wins on a convolution step: its weights fit in a core's
    cache (at most ``MAX_WEIGHTS`` values)."""
    weights = node.inputs[2 if node.op.name == "_conv_weight_grad" else 1]
    return int(np.prod(weights.shape)) <= MAX_WEIGHTS


def _spatial(node: Node) -> bool:
    """Whether a convolution step has a kernel bigger than 1x1."""
    return int(np.prod(node.attrs["kernel"])) > 1


def _scalar_like(entry: Entry) -> bool:
    return len(entry.shape) == 4 and all(s == 1 for s in entry.shape)


def _per_channel(entry: Entry, channels: int) -> bool:
    return entry.shape == (1, channels, 1, 1) and entry.dtype in _FLOATS


def _carried(node: Node) -> list[Entry] | None:
    """The values an op carrying the layout unchanged ties together (its result
    and the operands of its shape), or None for any other op."""
    if node.is_variable:
        return None
    name = node.op.name
    out = [Entry(node, k) for k in range(node.num_outputs)]
    if not all(_blockable(e) for e in out):
        return None
    if is_elementwise(node) and node.num_outputs == 1:
        shape, channels = out[0].shape, out[0].shape[1]
        tied = list(out)
        for e in data_inputs(node):
            if e.shape == shape and _blockable(e):
                tied.append(e)
            elif not (_scalar_like(e) or _per_channel(e, channels)):
                return None
        return tied
    if name == "Concat" and node.attrs.get("dim") == 1:
        return out + list(node.inputs) if all(_blockable(e) for e in node.inputs) else None
    if name == "_split_like" and node.attrs.get("axis") == 1 and _blockable(node.inputs[0]):
        return out + list(node.inputs)
    return None


def _max_pooling(node: Node) -> list[Entry] | None:
    """The values of a 2-D max pooling step (its data and result; a gradient's
    too), which runs blocked where all are blocked; None for other steps."""
    if node.is_variable or node.op.name not in ("Pooling", "_pooling_grad"):
        return None
    attrs = node.attrs
    if attrs["pool_type"] != "max" or attrs.get("layout") not in (None, "NCHW"):
        return None
    values = [*node.inputs, Entry(node, 0)]
    return values if all(_blockable(e) for e in values) else None


def _channel_sum(node: Node) -> bool:
    """A sum or mean over every axis but the channels of an (N, C, H, W) value
    (``axis=1, exclude=True`` or ``axis=(0, 2, 3)``)."""
    if node.is_variable or node.op.name not in _CHANNEL_SUMS or len(node.inputs) != 1:
        return False
    axes = tuple(sorted(node.attrs.get("axis") or ()))
    reduced = (0, 2, 3) if node.attrs.get("exclude") and axes == (1,) else axes
    return reduced == (0, 2, 3) and _blockable(node.inputs[0])


def _total(node: Node) -> bool:
    """A sum or mean of every value of an (N, C, H, W) value, to one number: the
    same of its blocked form."""
    attrs = node.attrs
    return (
        not node.is_variable
        and node.op.name in _CHANNEL_SUMS
        and attrs.get("axis") in (None, ())
        and not attrs.get("exclude")
        and not attrs.get("keepdims")
        and len(node.inputs) == 1
        and _blockable(node.inputs[0])
    )


class _Components:
    """Union-find over values (by key)."""

    def __init__(self) -> None:
        self.parent: dict[Key, Key] = {}

    def find(self, key: Key) -> Key:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def join(self, entries: list[Entry]) -> None:
        roots = [self.find(_key(e)) for e in entries]
        for root in roots[1:]:
            self.parent[root] = roots[0]


def blocked_layouts(graph: ProgramGraph) -> ProgramGraph:
    """The graph with its convolutions and the values between them on the
    channel-blocked layout (see the module docstring)."""
    if not settings.current().blocked_layout:
        return graph
    nodes = graph.nodes()
    by_id = {id(n): n for n in nodes}
    ports = {id(n): p for n in nodes if (p := convolution_ports(n)) is not None and _favoured(n)}
    if not ports:
        return graph
    components = _Components()
    # regions: components joined through max poolings too, to judge the layout's
    # worth (a pooling runs blocked between blocked components)
    regions = _Components()
    carried: dict[int, list[Entry]] = {}
    affine: list[Entry] = []  # values of elementwise ops with per-channel operands
    for node in nodes:
        tied = _carried(node)
        if tied is not None:
            carried[id(node)] = tied
            components.join(tied)
            regions.join(tied)
            if _reads_per_channel(node):
                affine.append(tied[0])
        elif (pooled := _max_pooling(node)) is not None:
            regions.join(pooled)
    # worth converting into: the regions a spatial convolution reads or writes,
    # where no per-channel operand is met (_reads_per_channel); a convolution
    # touching such a region stays NCHW, a 1x1 one runs blocked where it meets
    # one of those regions
    kept_plain = {regions.find(_key(e)) for e in affine}
    ports = {
        k: p for k, p in ports.items() if all(regions.find(_key(e)) not in kept_plain for e in p)
    }
    spatial = {regions.find(_key(e)) for k, p in ports.items() if _spatial(by_id[k]) for e in p}
    ports = {k: p for k, p in ports.items() if any(regions.find(_key(e)) in spatial for e in p)}
    blocked_roots = {components.find(_key(e)) for entries in ports.values() for e in entries}
    rewrite = _Rewrite(graph, ports, carried, lambda e: components.find(_key(e)) in blocked_roots)
    return rewrite.run()


class _Rewrite:
    """The graph rebuilt input-first with every value of a blocked component
    held blocked, and conversions where the layouts meet."""

    def __init__(
        self,
        graph: ProgramGraph,
        ports: dict[int, list[Entry]],
        carried: dict[int, list[Entry]],
        is_blocked: Callable[[Entry], bool],
    ) -> None:
        self.graph = graph
        self.ports = ports
        self.carried = carried
        self.is_blocked = is_blocked
        self.plain: dict[Key, Entry] = {}
        self.blocked: dict[Key, Entry] = {}

    def as_plain(self, entry: Entry) -> Entry:
        key = _key(entry)
        if key not in self.plain:
            self.plain[key] = _make("_from_blocked", self.blocked[key])
        return self.plain[key]

    def as_blocked(self, entry: Entry) -> Entry:
        key = _key(entry)
        if key not in self.blocked:
            self.blocked[key] = _make("_to_blocked", self.as_plain(entry))
        return self.blocked[key]

    def run(self) -> ProgramGraph:
        for variable in self.graph.inputs:
            self.plain[(id(variable), 0)] = Entry(variable, 0)
        for node in self.graph.nodes():
            if node.is_variable:
                self.plain.setdefault((id(node), 0), Entry(node, 0))
                continue
            if id(node) in self.ports:
                self._convolution(node)
            elif id(node) in self.carried and self.is_blocked(self.carried[id(node)][0]):
                self._carry(node)
            elif _channel_sum(node) and self.is_blocked(node.inputs[0]):
                self._channel_sum(node)
            elif _total(node) and self.is_blocked(node.inputs[0]):
                total = _make(node.op.name, self.as_blocked(node.inputs[0]), **node.attrs)
                self.plain[(id(node), 0)] = total
            elif (pooled := _max_pooling(node)) and all(self.is_blocked(e) for e in pooled):
                op = "_blocked_pooling" if node.op.name == "Pooling" else "_blocked_pooling_grad"
                operands = [self.as_blocked(e) for e in node.inputs]
                self.blocked[(id(node), 0)] = _make(op, *operands, **node.attrs)
            else:
                self._keep(node)
        outputs = [None if out is None else self.as_plain(out) for out in self.graph.outputs]
        return ProgramGraph(self.graph.inputs, outputs)

    def _convolution(self, node: Node) -> None:
        attrs = node.attrs
        geometry = dict(
            kernel=tuple(attrs["kernel"]),
            pad=tuple(attrs.get("pad") or (0, 0)),
            num_filter=attrs["num_filter"],
        )
        name, inputs = node.op.name, node.inputs
        if name == "Convolution":
            operands = [self.as_blocked(inputs[0])] + [self.as_plain(e) for e in inputs[1:]]
            out = _make("_blocked_conv", *operands, no_bias=attrs["no_bias"], **geometry)
            self.blocked[(id(node), 0)] = out
        elif name == "_conv_data_grad":
            g, w, like = inputs
            operands = [self.as_blocked(g), self.as_plain(w), self.as_blocked(like)]
            self.blocked[(id(node), 0)] = _make("_blocked_conv_data_grad", *operands, **geometry)
        else:
            g, x, like = inputs
            operands = [self.as_blocked(g), self.as_blocked(x), self.as_plain(like)]
            self.plain[(id(node), 0)] = _make("_blocked_conv_weight_grad", *operands, **geometry)

    def _carry(self, node: Node) -> None:
        channels = node.types[0].shape[1]
        operands = []
        for k, e in enumerate(node.inputs):
            if k in node.op.shape_only or _blockable(e) and e.shape != (1, channels, 1, 1):
                operands.append(self.as_blocked(e))
            elif _per_channel(e, channels):
                operands.append(self.as_blocked(e))
            else:  # size one on every axis: one more for the blocked channels
                operands.append(_make("Reshape", self.as_plain(e), shape=(1, 1, 1, 1, 1)))
        made = make_node(node.op, operands, dict(node.attrs))
        for k in range(node.num_outputs):
            self.blocked[(id(node), k)] = Entry(made, k)

    def _channel_sum(self, node: Node) -> None:
        channels = node.inputs[0].shape[1]
        keepdims = bool(node.attrs.get("keepdims"))
        # the same axes of the blocked value: the channels are its axes 1 and 4
        attrs = dict(node.attrs, axis=(0, 2, 3), exclude=False, keepdims=keepdims)
        sums = _make(node.op.name, self.as_blocked(node.inputs[0]), **attrs)
        if keepdims:  # (1, C / 16, 1, 1, 16)
            self.plain[(id(node), 0)] = _make("_from_blocked", sums)
        else:  # (C / 16, 16): the channels in order
            self.plain[(id(node), 0)] = _make("Reshape", sums, shape=(channels,))

    def _keep(self, node: Node) -> None:
        inputs = tuple(self.as_plain(e) for e in node.inputs)
        same = all(a.node is b.node and a.index == b.index for a, b in zip(inputs, node.inputs))
        kept = node if same else Node(node.op, node.attrs, inputs, node.types, node._name)
        for k in range(node.num_outputs):
            self.plain[(id(node), k)] = Entry(kept, k)


def _make(op: str, *inputs: Entry, **attrs) -> Entry:
    return Entry(make_node(op, inputs, attrs), 0)
