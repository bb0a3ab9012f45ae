"""The one writer of gradients: how a computed gradient reaches its buffer for
each ``grad_req``, for autograd, executors and Gluon alike."""

from __future__ import annotations

import numpy as np


def write_gradient(buffer: np.ndarray, grad: np.ndarray | None, req: str) -> None:
    """Store ``grad`` into ``buffer`` following ``req``.

    'write' overwrites (a structurally zero gradient, None, writes zeros),
    'add' accumulates (None adds nothing), 'null' leaves the buffer alone. A
    gradient a program already computed into ``buffer`` itself is left as it is.
    """
    if grad is buffer or req == "null":
        return
    if req == "add":
        if grad is not None:
            buffer += grad
    elif grad is None:
        buffer[...] = 0
    else:
        np.copyto(buffer, grad, casting="unsafe")


__all__ = ["write_gradient"]
