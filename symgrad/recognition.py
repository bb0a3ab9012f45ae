"""Recognising a repeated recording: the one place ``backward`` gets its key.

A training loop records the same graph every step. :func:`recognise` finds out,
cheapest way first, which graph ``backward`` was given and how the program
cache will know it:

1. the tape's step template: the recording matched the last differentiated
   graph op by op while it was recorded (no key to build: the template keeps
   the program, see ``autograd._Memo``);
2. the chain template: a chain of one-input ops back to one leaf, compared with
   the last chain in one walk;
3. a new chain, keyed by following first inputs;
4. the recording's tape, when it holds exactly this graph;
5. anything else: a walk of the graph (``symgrad_compiler.ir.signature``).

The per-thread state this needs (the last tape, the last templates) lives in
:mod:`._state`; :meth:`Recognised.remember` updates it after a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import symgrad_compiler as compiler
from symgrad_compiler import Entry, Node
from symgrad_compiler.chains import ChainTemplate, chain_signature
from symgrad_compiler.tape import Template

from . import _state


@dataclass
class Recognised:
    """A graph ``backward`` was given, as recognised.

    ``nodes`` are its nodes (in the order the key's positions refer to), ``wrt``
    the variables whose gradients are wanted, ``signature`` the ``(key,
    positions)`` pair when one was built (None when a template recognised the
    graph without a key), ``template`` the tape's or chain's template that
    will keep the program, if any.
    """

    nodes: list[Node]
    wrt: list[Node]
    signature: tuple | None
    template: Template | ChainTemplate | None

    def remember(self) -> None:
        """After a run: a template that was keyed anew and now keeps a program
        becomes the one the next graph is checked against."""
        template = self.template
        if self.signature is None or template is None or template.memo is None:
            return
        if type(template) is ChainTemplate:
            _state.chain_template.set(template)
        else:
            _state.template.set(template)

    @property
    def by_tape_template(self) -> bool:
        """Whether the tape's step template holds exactly this graph."""
        return type(self.template) is Template


def recognise(
    entries: Sequence[Entry],
    leaf_role: Callable[[Node], Any],
    marked: Callable[[Sequence[Node]], list[Node]],
) -> Recognised:
    """The graph behind ``entries`` (see the module docstring for the order).

    ``leaf_role(node)`` is what distinguishes leaves in a key (a variable's
    grad_req); ``marked(nodes)`` the variables to differentiate when no memo
    says which.
    """
    tape = _state.last_tape.get()
    found: Any = None
    template: Template | ChainTemplate | None = None
    if len(entries) == 1:
        if tape is not None:
            found = tape.recognise(entries[0], leaf_role)
        chain = _state.chain_template.get()
        if found is None and chain is not None:
            chain_nodes = chain.recognise(entries[0], leaf_role)
            found = None if chain_nodes is None else (chain_nodes, chain)
    if found is not None:
        nodes, template = found
        memo = template.memo
        wrt = [nodes[at] for at in memo.wrt] if memo is not None else marked(nodes)
        return Recognised(nodes, wrt, None, template)
    if len(entries) == 1:
        found = chain_signature(entries[0], leaf_role)
        if found is not None:
            template = ChainTemplate(found[0], found[1], leaf_role)
        elif tape is not None:
            found = tape.signature(entries[0], leaf_role)
            template = None if found is None else found[3]
    nodes, graph_key, position = (found or compiler.ir.signature(list(entries), leaf_role))[:3]
    return Recognised(nodes, marked(nodes), (graph_key, position), template)
