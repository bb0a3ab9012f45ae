"""jax.jit of jax.value_and_grad (CPU); the process is pinned to 2 cores."""

import jax
import jax.numpy as jnp
import numpy as np

VERSION = jax.__version__


def _put(inp, names):
    return [jax.device_put(np.asarray(inp[k])) for k in names]


def _stepper(fn, args):
    """step() runs ``fn(*args)``, waits for it and returns ``(value, [grads])``."""

    def step():
        value, grads = jax.block_until_ready(fn(*args))
        return value, list(grads) if isinstance(grads, tuple) else [grads]

    return step


def w1(inp):
    """W1: fused elementwise."""

    def f(x, w, b):
        return jnp.sum(jnp.tanh(x * w + b) * jax.nn.sigmoid(x) + 0.5 * jnp.exp(-x * x))

    fn = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
    return _stepper(fn, _put(inp, "xwb"))


def w2(inp):
    """W2: MLP training step."""

    def loss(W1, b1, W2, b2, X, y):
        h = jnp.tanh(X @ W1 + b1)
        logp = jax.nn.log_softmax(h @ W2 + b2, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    return _stepper(fn, _put(inp, ["W1", "b1", "W2", "b2", "X", "y"]))


def w3(inp):
    """W3: the 50-op cycle (unrolled by tracing)."""
    ops = (jnp.sin, lambda v: v * 1.01, lambda v: v + 0.1, jnp.tanh, jnp.exp)

    def f(x):
        v = x
        for i in range(50):
            v = ops[i % 5](v)
        return jnp.sum(v)

    fn = jax.jit(jax.value_and_grad(f))
    return _stepper(fn, _put(inp, "x"))


def w4(inp):
    """W4: jit of the grad of the sum of the grad."""

    def f(x):
        return jnp.sum(jnp.tanh(x) * jnp.exp(-x * x))

    g = jax.grad(f)
    fn = jax.jit(jax.value_and_grad(lambda x: jnp.sum(g(x))))
    return _stepper(fn, _put(inp, "x"))
