"""``_fused``: a node holding an elementwise subgraph that runs as one loop.

The fusion pass makes these; the lowering turns each into one numba kernel. The
op's numpy implementation interprets the body, so a fused graph still runs on
the interpreter and each pass can be checked alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..interpret import evaluate
from ..ir import Entry, Node, TensorType
from ..registry import Attr, OpDef, register


class FusedBody:
    """The subgraph of a ``_fused`` node: ``inputs`` are variables standing for the
    node's inputs, ``outputs`` the entries it produces, in order."""

    def __init__(self, inputs: Sequence[Node], outputs: Sequence[Entry]) -> None:
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def __repr__(self) -> str:
        ops = [n.op.name for n in self.nodes()]
        return f"FusedBody({len(self.inputs)} in, {len(self.outputs)} out: {' '.join(ops)})"

    def nodes(self) -> list[Node]:
        """The body's op nodes in topological order."""
        from ..ir import topo_order

        return [n for n in topo_order(self.outputs) if not n.is_variable]


def _fused_types(types: Sequence[TensorType], *, body: FusedBody) -> list[TensorType]:
    return [out.type for out in body.outputs]


def _fused(*arrays: np.ndarray, body: FusedBody) -> np.ndarray | tuple[np.ndarray, ...]:
    return tuple(evaluate(body.outputs, {var: (a,) for var, a in zip(body.inputs, arrays)}))


register(
    OpDef(
        name="_fused",
        infer=_fused_types,
        impl=_fused,
        attrs={"body": Attr(lambda body: body)},
        variadic=True,
        differentiable=False,
        kind="fused",
        doc="An elementwise subgraph (with the reductions that end it) run as one loop.",
    )
)
