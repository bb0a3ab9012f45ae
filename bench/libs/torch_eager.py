"""PyTorch eager (CPU): autograd with ``requires_grad``, 2 threads."""

import numpy as np
import torch
import torch.nn.functional as F

VERSION = torch.__version__

torch.set_num_threads(2)


def _leaves(inp, names):
    return [torch.from_numpy(np.array(inp[k])).requires_grad_() for k in names]


def w1(inp):
    """W1: fused elementwise."""
    x, w, b = _leaves(inp, "xwb")

    def step():
        for a in (x, w, b):
            a.grad = None
        f = (torch.tanh(x * w + b) * torch.sigmoid(x) + 0.5 * torch.exp(-x * x)).sum()
        f.backward()
        return f.detach(), [x.grad, w.grad, b.grad]

    return step


def w2(inp):
    """W2: MLP training step with log_softmax + nll_loss."""
    X = torch.from_numpy(inp["X"])
    y = torch.from_numpy(inp["y"])
    params = _leaves(inp, ["W1", "b1", "W2", "b2"])
    W1, b1, W2, b2 = params

    def step():
        for p in params:
            p.grad = None
        h = torch.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        loss = F.nll_loss(F.log_softmax(z, dim=1), y)
        loss.backward()
        return loss.detach(), [p.grad for p in params]

    return step


def w3(inp):
    """W3: the 50-op cycle."""
    (x,) = _leaves(inp, "x")
    ops = (torch.sin, lambda v: v * 1.01, lambda v: v + 0.1, torch.tanh, torch.exp)

    def step():
        x.grad = None
        v = x
        for i in range(50):
            v = ops[i % 5](v)
        f = v.sum()
        f.backward()
        return f.detach(), [x.grad]

    return step


def w4(inp):
    """W4: second order through ``torch.autograd.grad(create_graph=True)``."""
    (x,) = _leaves(inp, "x")

    def step():
        x.grad = None
        f = (torch.tanh(x) * torch.exp(-x * x)).sum()
        (g,) = torch.autograd.grad(f, x, create_graph=True)
        s = g.sum()
        s.backward()
        return s.detach(), [x.grad]

    return step


def cnn(inp):
    """CNN step: conv2d, batch_norm (training), relu, max_pool2d, linear, cross_entropy."""
    from bench.workloads import CNN_EPS

    X = torch.from_numpy(inp["X"])
    y = torch.from_numpy(inp["y"])
    names = ["conv_w", "gamma", "beta", "fc_w", "fc_b"]
    params = _leaves(inp, names)
    conv_w, gamma, beta, fc_w, fc_b = params
    running_mean = torch.from_numpy(np.array(inp["moving_mean"]))
    running_var = torch.from_numpy(np.array(inp["moving_var"]))

    def step():
        for p in params:
            p.grad = None
        h = F.conv2d(X, conv_w)
        h = F.batch_norm(h, running_mean, running_var, gamma, beta, training=True, eps=CNN_EPS)
        h = F.max_pool2d(F.relu(h), 2)
        loss = F.cross_entropy(F.linear(h.flatten(1), fc_w, fc_b), y)
        loss.backward()
        return loss.detach(), [p.grad for p in params]

    return step


def w6(inp):
    """W6 forward+backward: nn.Sequential + CrossEntropyLoss(reduction='none')."""
    from bench.libs import torch_mlp

    net, X, y = torch_mlp.network(inp)
    return torch_mlp.fwd_bwd(net, X, y, torch_mlp.loss_of(net, "none"))


def w6_step(inp):
    """W6 training step: nn.Sequential + CrossEntropyLoss + torch.optim.SGD."""
    from bench.libs import torch_mlp

    net, X, y = torch_mlp.network(inp)
    return torch_mlp.train(net, X, y, torch_mlp.loss_of(net, "mean"))
