"""The W6 MLP in PyTorch, shared by the eager and torch.compile columns.

``nn.Sequential(Linear(784, 256), ReLU(), Linear(256, 10))`` with the shared
weights (``nn.Linear`` keeps Dense's (out, in) layout) and ``CrossEntropyLoss``.
The columns differ only in ``forward(X, y) -> loss``: called as is, or through
``torch.compile``.
"""

import numpy as np
import torch
from torch import nn

from bench.workloads import W6_SGD


def network(inp):
    """The W6 network with the shared initial weights; returns (net, X, y)."""
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        for p, name in zip(net.parameters(), ("W1", "b1", "W2", "b2")):
            p.copy_(torch.from_numpy(np.array(inp[name])))
    return net, torch.from_numpy(inp["X"]), torch.from_numpy(inp["y"])


def fwd_bwd(net, X, y, forward):
    """W6 forward+backward step: per-sample losses, backward with a head gradient of
    ones (Gluon's ``L.backward()``); returns (losses, grads)."""
    ones = torch.ones(X.shape[0])

    def step():
        net.zero_grad(set_to_none=True)
        L = forward(X, y)
        L.backward(ones)
        return L.detach(), [p.grad for p in net.parameters()]

    return step


def train(net, X, y, forward):
    """W6 training step with ``torch.optim.SGD`` (momentum 0.9, weight decay 1e-4) on the
    mean loss; returns (loss, parameters after the update)."""
    opt = torch.optim.SGD(
        net.parameters(),
        lr=W6_SGD["learning_rate"],
        momentum=W6_SGD["momentum"],
        weight_decay=W6_SGD["wd"],
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward(X, y)
        loss.backward()
        opt.step()
        return loss.detach(), [p.detach() for p in net.parameters()]

    return step


def loss_of(net, reduction):
    """``forward(X, y)``: the network then ``CrossEntropyLoss(reduction)``."""
    criterion = nn.CrossEntropyLoss(reduction=reduction)

    def forward(X, y):
        return criterion(net(X), y)

    return forward
