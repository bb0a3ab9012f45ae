"""Train a small CNN with symgrad's autograd and plain SGD on synthetic images.

Each 1x8x8 image holds one bright 3x3 blob in one of four quadrants (plus noise);
the label is the quadrant. The network is Convolution -> BatchNorm -> relu ->
max Pooling -> FullyConnected, trained with softmax cross-entropy.

Run: python examples/train_cnn.py
"""

from __future__ import annotations

import numpy as np

from symgrad import autograd, nd

CLASSES = 4
FILTERS = 6


def make_images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` noisy 1x8x8 images and their quadrant labels."""
    labels = rng.integers(0, CLASSES, count)
    images = rng.normal(0.0, 0.3, (count, 1, 8, 8))
    rows = 4 * (labels // 2) + rng.integers(0, 2, count)
    cols = 4 * (labels % 2) + rng.integers(0, 2, count)
    for k in range(3):  # paint the 3x3 blob, one row of offsets at a time
        for j in range(3):
            images[np.arange(count), 0, rows + k, cols + j] += 1.0
    return images.astype(np.float32), labels.astype(np.float32)


def init_params(rng: np.random.Generator) -> dict[str, nd.NDArray]:
    """Weights (He-scaled), biases, BatchNorm scale/shift and running statistics."""

    def normal(shape, fan_in):
        return nd.array(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape))

    return {
        "conv_w": normal((FILTERS, 1, 3, 3), 9),
        "conv_b": nd.zeros((FILTERS,)),
        "gamma": nd.ones((FILTERS,)),
        "beta": nd.zeros((FILTERS,)),
        "moving_mean": nd.zeros((FILTERS,)),
        "moving_var": nd.ones((FILTERS,)),
        "fc_w": normal((CLASSES, FILTERS * 16), FILTERS * 16),
        "fc_b": nd.zeros((CLASSES,)),
    }


TRAINED = ("conv_w", "conv_b", "gamma", "beta", "fc_w", "fc_b")


def net(x: nd.NDArray, p: dict[str, nd.NDArray]) -> nd.NDArray:
    """Class scores for a batch of images."""
    h = nd.Convolution(x, p["conv_w"], p["conv_b"], kernel=(3, 3), pad=(1, 1), num_filter=FILTERS)
    h = nd.BatchNorm(h, p["gamma"], p["beta"], p["moving_mean"], p["moving_var"], fix_gamma=False)
    h = nd.Pooling(nd.relu(h), kernel=(2, 2), stride=(2, 2), pool_type="max")
    return nd.FullyConnected(h, p["fc_w"], p["fc_b"], num_hidden=CLASSES)


def train(steps: int = 30, batch: int = 32, learning_rate: float = 0.2, seed: int = 0):
    """Run ``steps`` SGD steps; returns the loss per step, the network, its
    parameters and the training images."""
    rng = np.random.default_rng(seed)
    images, labels = make_images(steps * batch // 2, rng)
    params = init_params(rng)
    for name in TRAINED:
        params[name].attach_grad()
    losses = []
    for _ in range(steps):
        chosen = rng.choice(len(images), batch, replace=False)
        x, y = nd.array(images[chosen]), nd.array(labels[chosen])
        with autograd.record():
            loss = nd.softmax_cross_entropy(net(x, params), y) / batch
        loss.backward()
        for name in TRAINED:
            param = params[name]
            param[:] = param - learning_rate * param.grad
        losses.append(float(loss.asscalar()))
    return np.array(losses), net, params, images


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    losses, _, _, _ = train()
    elapsed = time.perf_counter() - start
    print("loss per step:", " ".join(f"{v:.3f}" for v in losses))
    print(
        f"first 5 mean {losses[:5].mean():.3f}, last 5 mean {losses[-5:].mean():.3f}, "
        f"{elapsed:.2f} s for {len(losses)} steps"
    )
