"""numpy by hand: forward and backward written out in float32 numpy.

Written the way a careful person would: closed-form or hand-derived
gradients, work buffers allocated once in setup and reused through ``out=``.
"""

import numpy as np

VERSION = np.__version__


def w1(inp):
    """W1: fused elementwise, gradients from the closed form."""
    x, w, b = inp["x"], inp["w"], inp["b"]
    t, s, e, tmp = (np.empty_like(x) for _ in range(4))
    gx, gw, gb = (np.empty_like(x) for _ in range(3))

    def step():
        np.multiply(x, w, out=t)
        np.add(t, b, out=t)
        np.tanh(t, out=t)  # t = tanh(xw+b)
        np.negative(x, out=s)
        np.exp(s, out=s)
        np.add(s, 1, out=s)
        np.reciprocal(s, out=s)  # s = sigmoid(x)
        np.multiply(x, x, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)  # e = exp(-x^2)
        np.multiply(t, s, out=tmp)  # ts
        f = tmp.sum(dtype=np.float32) + np.float32(0.5) * e.sum(dtype=np.float32)
        np.multiply(t, t, out=gb)
        np.subtract(1, gb, out=gb)
        np.multiply(gb, s, out=gb)  # gb = (1-t^2) s
        np.multiply(gb, x, out=gw)
        np.multiply(gb, w, out=gx)
        np.subtract(1, s, out=s)  # s <- 1-s
        np.multiply(tmp, s, out=tmp)  # ts(1-s)
        np.add(gx, tmp, out=gx)
        np.multiply(e, x, out=e)
        np.subtract(gx, e, out=gx)
        return f, [gx, gw, gb]

    return step


def w2(inp):
    """W2: MLP step with hand-written backprop; GEMMs write into buffers."""
    X, y = inp["X"], inp["y"]
    W1, b1, W2, b2 = inp["W1"], inp["b1"], inp["W2"], inp["b2"]
    B = X.shape[0]
    rows = np.arange(B)
    h = np.empty((B, W1.shape[1]), np.float32)
    z = np.empty((B, W2.shape[1]), np.float32)
    dh = np.empty_like(h)
    gW1, gW2 = np.empty_like(W1), np.empty_like(W2)
    inv_b = np.float32(1.0 / B)

    def step():
        np.dot(X, W1, out=h)
        np.add(h, b1, out=h)
        np.tanh(h, out=h)
        np.dot(h, W2, out=z)
        np.add(z, b2, out=z)
        np.subtract(z, z.max(axis=1, keepdims=True), out=z)
        np.exp(z, out=z)
        np.divide(z, z.sum(axis=1, keepdims=True), out=z)  # z <- softmax
        loss = -np.mean(np.log(z[rows, y]))
        z[rows, y] -= 1
        np.multiply(z, inv_b, out=z)  # z <- dloss/dz
        np.dot(h.T, z, out=gW2)
        gb2 = z.sum(axis=0)
        np.dot(z, W2.T, out=dh)
        np.multiply(h, h, out=h)
        np.subtract(1, h, out=h)
        np.multiply(dh, h, out=dh)  # dh <- dloss/d(pre-activation)
        np.dot(X.T, dh, out=gW1)
        return loss, [gW1, dh.sum(axis=0), gW2, gb2]

    return step


def w3(inp):
    """W3: the 50-op cycle; the chain rule is accumulated as we go (elementwise)."""
    x = inp["x"]
    c1, c2 = np.float32(1.01), np.float32(0.1)

    def step():
        v = x
        g = np.ones_like(x)
        for i in range(50):
            k = i % 5
            if k == 0:
                g = g * np.cos(v)
                v = np.sin(v)
            elif k == 1:
                g = g * c1
                v = v * c1
            elif k == 2:
                v = v + c2
            elif k == 3:
                v = np.tanh(v)
                g = g * (1 - v * v)
            else:
                v = np.exp(v)
                g = g * v
        return v.sum(), [g]

    return step


def w4(inp):
    """W4: second-order gradient h from the hand-derived closed form."""
    x = inp["x"]
    t, e, u, a, h, tmp = (np.empty_like(x) for _ in range(6))

    def step():
        np.tanh(x, out=t)
        np.multiply(x, x, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.multiply(t, t, out=u)
        np.subtract(1, u, out=u)  # u = 1-t^2
        np.multiply(x, t, out=a)
        np.multiply(a, -2, out=a)
        np.add(a, u, out=a)  # A = u - 2xt
        np.multiply(e, a, out=tmp)
        value = tmp.sum()  # sum(g), g = e*A
        np.multiply(x, a, out=h)  # h = e*(-2(xA + tu + t + xu))
        np.multiply(t, u, out=tmp)
        np.add(h, tmp, out=h)
        np.add(h, t, out=h)
        np.multiply(x, u, out=tmp)
        np.add(h, tmp, out=h)
        np.multiply(h, e, out=h)
        np.multiply(h, -2, out=h)
        return value, [h]

    return step
