"""Gradients of gradients: derivatives of any order, Hessian-vector products,
a Newton step and a gradient penalty, all with ``autograd.grad(create_graph=True)``.

1. The first four derivatives of tanh, each the gradient of the one before,
   checked against their closed forms.
2. Softmax regression on scikit-learn's digits trained by Newton's method: each
   step solves H d = -g by conjugate gradients, where each product H v is the
   gradient of ``g . v`` (a Hessian-vector product, never the Hessian itself);
   compared with the same number of plain gradient steps.
3. A gradient-penalty step (as in WGAN-GP): a critic's loss holds the norm of
   its gradient with respect to its input, so its backward is second order.

Figure: ``higher_order.png`` (the derivatives, and loss per step).

Run: python examples/higher_order.py [--quick] [--out DIR]
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt
import numpy as np
from _example_cli import parse_args
from sklearn.datasets import load_digits
from tqdm import tqdm

import symgrad as mx
from symgrad import autograd, gluon, nd
from symgrad.gluon import nn


def tanh_derivatives(x: np.ndarray, order: int) -> list[np.ndarray]:
    """tanh and its derivatives up to ``order`` at ``x``, by repeated autograd."""
    x = nd.array(x, dtype="float64")
    x.attach_grad()
    with autograd.record():
        values = [nd.tanh(x)]
        for _ in range(order):
            # elementwise function: with head gradient 1 the gradient is f'(x)
            (derivative,) = autograd.grad(
                values[-1], [x], head_grads=nd.ones_like(x), create_graph=True, retain_graph=True
            )
            values.append(derivative)
    return [v.asnumpy() for v in values]


def tanh_closed_forms(x: np.ndarray) -> list[np.ndarray]:
    """tanh, 1 - t^2, -2t(1 - t^2), -2(1 - t^2)(1 - 3t^2), 8t(1 - t^2)(2 - 3t^2)."""
    t = np.tanh(x)
    s = 1 - t * t
    return [t, s, -2 * t * s, -2 * s * (1 - 3 * t * t), 8 * t * s * (2 - 3 * t * t)]


def softmax_loss(weight, bias, x, y):
    """Mean softmax cross-entropy of x @ weight + bias, plus a small L2 term."""
    scores = nd.dot(x, weight) + bias
    loss = nd.softmax_cross_entropy(scores, y) / x.shape[0]
    return loss + 1e-3 * (weight * weight).sum()


def loss_and_gradient(params, x, y):
    """The loss and its gradient at ``params`` (first order only)."""
    for p in params:
        p.attach_grad()
    with autograd.record():
        loss = softmax_loss(*params, x, y)
    loss.backward()
    return float(loss.asscalar()), [p.grad.copy() for p in params]


def hessian_vector_product(params, vector, x, y):
    """H v: the gradient of (gradient . v), whose graph the first grad recorded."""
    for p in params:
        p.attach_grad()
    with autograd.record():
        loss = softmax_loss(*params, x, y)
        grads = autograd.grad(loss, params, create_graph=True, retain_graph=True)
        directional = sum((g * v).sum() for g, v in zip(grads, vector))
    directional.backward()
    return [p.grad.copy() for p in params]


def newton_direction(params, gradient, x, y, iterations: int):
    """Approximately solve H d = -g by conjugate gradients on H v products."""
    direction = [nd.zeros_like(g) for g in gradient]
    residual = [-g for g in gradient]
    search = [r.copy() for r in residual]
    rho = sum(float((r * r).sum().asscalar()) for r in residual)
    for _ in range(iterations):
        product = hessian_vector_product(params, search, x, y)
        alpha = rho / sum(float((s * h).sum().asscalar()) for s, h in zip(search, product))
        direction = [d + alpha * s for d, s in zip(direction, search)]
        residual = [r - alpha * h for r, h in zip(residual, product)]
        new_rho = sum(float((r * r).sum().asscalar()) for r in residual)
        search = [r + (new_rho / rho) * s for r, s in zip(residual, search)]
        rho = new_rho
    return direction


def train_softmax(x, y, steps: int, newton: bool, cg_iterations: int, bar: tqdm):
    """Loss per step of Newton-CG (``newton``) or of gradient descent."""
    params = [nd.zeros((x.shape[1], 10), dtype="float64"), nd.zeros((10,), dtype="float64")]
    losses = []
    for _ in range(steps):
        loss, gradient = loss_and_gradient(params, x, y)
        losses.append(loss)
        if newton:
            step = newton_direction(params, gradient, x, y, cg_iterations)
        else:
            step = [-1.0 * g for g in gradient]
        params = [p + s for p, s in zip(params, step)]
        bar.update(1)
        bar.set_postfix(method="newton" if newton else "gd", loss=f"{loss:.4f}")
    losses.append(loss_and_gradient(params, x, y)[0])
    return losses, params


def gradient_penalty_step(batch: int = 64) -> tuple[float, float]:
    """One critic update with the penalty (|grad_x critic(x)| - 1)^2; returns the
    mean gradient norm before and after a few updates."""
    critic = nn.HybridSequential()
    critic.add(nn.Dense(32, activation="tanh"), nn.Dense(1))
    critic.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(critic.collect_params(), "adam", {"learning_rate": 0.01})
    rng = np.random.default_rng(0)
    norms = []
    for _ in range(20):
        x = nd.array(rng.normal(size=(batch, 8)))
        x.attach_grad()
        with autograd.record():
            score = critic(x)
            (input_grad,) = autograd.grad(
                score, [x], head_grads=nd.ones_like(score), create_graph=True, retain_graph=True
            )
            norm = nd.sqrt((input_grad * input_grad).sum(axis=1) + 1e-12)
            loss = score.mean() + 10.0 * ((norm - 1.0) ** 2).mean()
        loss.backward()  # differentiates through input_grad: second order
        trainer.step(1)
        norms.append(float(norm.mean().asscalar()))
    return norms[0], norms[-1]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mx.random.seed(0)
    start = time.perf_counter()

    x_axis = np.linspace(-3, 3, 241)
    derivatives = tanh_derivatives(x_axis, order=4)
    error = max(float(np.abs(a - b).max()) for a, b in zip(derivatives, tanh_closed_forms(x_axis)))
    print(f"tanh derivatives 1-4 by autograd: max error against closed forms {error:.2e}")

    digits = load_digits()
    count = 300 if args.quick else 1000
    x = nd.array(digits.data[:count] / 16.0, dtype="float64")
    y = nd.array(digits.target[:count], dtype="float64")
    steps, cg_iterations = (2, 3) if args.quick else (6, 10)
    bar = tqdm(total=2 * steps, desc="softmax regression", unit="step")
    newton_losses, params = train_softmax(x, y, steps, True, cg_iterations, bar)
    gd_losses, _ = train_softmax(x, y, steps, False, cg_iterations, bar)
    bar.close()
    accuracy = float(((nd.dot(x, params[0]) + params[1]).argmax(axis=1) == y).mean().asscalar())
    print(
        f"after {steps} steps: loss {newton_losses[-1]:.4f} (Newton-CG) "
        f"vs {gd_losses[-1]:.4f} (gradient descent)"
    )

    before, after = gradient_penalty_step()
    print(f"gradient penalty: mean |grad_x critic| {before:.3f} -> {after:.3f} (pulled to 1)")
    elapsed = time.perf_counter() - start

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for order, values in enumerate(derivatives):
        left.plot(x_axis, values, label="tanh" if order == 0 else f"order {order}")
    left.set(xlabel="x", title="tanh and its derivatives (autograd)")
    left.legend(fontsize=8)
    right.plot(newton_losses, "o-", label=f"Newton-CG ({cg_iterations} H v per step)")
    right.plot(gd_losses, "o-", label="gradient descent")
    right.set(
        xlabel="step",
        ylabel="training loss",
        yscale="log",
        title="softmax regression on the digits",
    )
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = args.out / "higher_order.png"
    figure.savefig(path, dpi=100)
    print(f"done in {elapsed:.1f} s; figure: {path}")
    print(f"final accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
