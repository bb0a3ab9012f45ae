"""``Updater``: applies an optimizer to indexed weights, keeping each one's state.

Its states serialise as MXNet's do (a pickle of ``{index: state}``, optionally
with the optimizer), so that ``get_states`` output loads in real MXNet and
MXNet's loads here.
"""

from __future__ import annotations

from typing import Any

from ..ndarray import NDArray
from . import pickling
from .optimizer import Optimizer

__all__ = ["Updater", "get_updater"]


class Updater:
    """Calls ``optimizer.update_multi_precision(index, weight, grad, state)``,
    creating each index's state on its first update.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer to apply.
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.states: dict[Any, Any] = {}
        self.states_synced: dict[Any, bool] = {}
        self.aggregate_updates = optimizer.aggregate_num > 0

    def __call__(self, index: Any, grad: NDArray | list, weight: NDArray | list) -> None:
        """Update ``weight`` from ``grad``; ``index``, ``grad`` and ``weight`` may be
        lists of equal length (one update each)."""
        if not isinstance(index, (list, tuple)):
            index, grad, weight = [index], [grad], [weight]
        for i, g, w in zip(index, grad, weight):
            if i not in self.states:
                self.states[i] = self.optimizer.create_state_multi_precision(i, w)
                self.states_synced[i] = True
            self.optimizer.update_multi_precision(i, w, g, self.states[i])

    def sync_state_context(self, state: Any, context: Any) -> Any:
        """The state on ``context`` (one device here: the state itself)."""
        return state

    def set_states(self, states: bytes) -> None:
        """Load states serialised by :meth:`get_states` (here or by MXNet); a pair
        ``(states, optimizer)`` replaces the optimizer too."""
        loaded = pickling.loads(states)
        if isinstance(loaded, tuple) and len(loaded) == 2:
            self.states, self.optimizer = loaded
        else:
            self.states = loaded
        self.states_synced = dict.fromkeys(self.states.keys(), False)

    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """The states as MXNet pickles them, with the optimizer if asked."""
        return pickling.dumps((self.states, self.optimizer) if dump_optimizer else self.states)


def get_updater(optimizer: Optimizer) -> Updater:
    """An :class:`Updater` for ``optimizer``."""
    return Updater(optimizer)
