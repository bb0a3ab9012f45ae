"""torch.compile (inductor, CPU) of ``torch.func.grad_and_value``, 2 threads.

``torch.compile`` cannot trace ``autograd.grad(create_graph=True)`` (aot_autograd
has no double backward), so every workload is written with ``torch.func``:
the compiled function returns the gradients and the value in one call, as
``jax.jit(jax.value_and_grad(f))`` does. The first call compiles (tens of
seconds here); setup makes it, so steady state is compiled code.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad, grad_and_value

VERSION = torch.__version__

torch.set_num_threads(2)


def _tensors(inp, names):
    return [torch.from_numpy(np.array(inp[k])) for k in names]


def _stepper(f, argnums, args):
    """step() runs the compiled grad_and_value of ``f`` and returns (value, [grads])."""
    fn = torch.compile(grad_and_value(f, argnums=argnums))

    def step():
        grads, value = fn(*args)
        return value, list(grads) if isinstance(grads, tuple) else [grads]

    step()
    return step


def w1(inp):
    """W1: fused elementwise."""

    def f(x, w, b):
        return (torch.tanh(x * w + b) * torch.sigmoid(x) + 0.5 * torch.exp(-x * x)).sum()

    return _stepper(f, (0, 1, 2), _tensors(inp, "xwb"))


def w2(inp):
    """W2: MLP training step."""

    def loss(W1, b1, W2, b2, X, y):
        h = torch.tanh(X @ W1 + b1)
        return F.nll_loss(F.log_softmax(h @ W2 + b2, dim=1), y)

    return _stepper(loss, (0, 1, 2, 3), _tensors(inp, ["W1", "b1", "W2", "b2", "X", "y"]))


def w3(inp):
    """W3: the 50-op cycle."""
    ops = (torch.sin, lambda v: v * 1.01, lambda v: v + 0.1, torch.tanh, torch.exp)

    def f(x):
        v = x
        for i in range(50):
            v = ops[i % 5](v)
        return v.sum()

    return _stepper(f, 0, _tensors(inp, "x"))


def w4(inp):
    """W4: the gradient of the sum of the gradient (torch.func.grad inside)."""

    def f(x):
        return (torch.tanh(x) * torch.exp(-x * x)).sum()

    def s(x):
        return grad(f)(x).sum()

    return _stepper(s, 0, _tensors(inp, "x"))


def w6(inp):
    """W6 forward+backward: ``torch.compile`` of the network + loss; backward through
    its compiled (AOTAutograd) backward. Setup makes the first, compiling, call."""
    from bench.libs import torch_mlp

    net, X, y = torch_mlp.network(inp)
    step = torch_mlp.fwd_bwd(net, X, y, torch.compile(torch_mlp.loss_of(net, "none")))
    step()
    return step


def w6_step(inp):
    """W6 training step: compiled network + loss, eager ``torch.optim.SGD``. The compiling
    call runs on a copy, so that the step the harness checks first is the first update."""
    from bench.libs import torch_mlp

    net, X, y = torch_mlp.network(inp)
    forward = torch.compile(torch_mlp.loss_of(net, "mean"))
    forward(X, y).backward()  # compiles forward and backward; no update
    net.zero_grad(set_to_none=True)
    return torch_mlp.train(net, X, y, forward)
