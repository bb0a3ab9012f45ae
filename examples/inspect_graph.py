"""Look inside: a recorded Gluon step as an MXNet Symbol, its summary, the program
symgrad compiles for its gradients, its JSON, and a picture of the graph.

1. Record the loss of a small Gluon network (``autograd.record``) and take the
   recorded graph as a Symbol with ``autograd.get_symbol``.
2. ``mx.viz.print_summary``: each node, its inputs and its output shapes.
3. ``symgrad_compiler.explain``: the gradient program after the compiler's
   passes, its fused elementwise groups and their generated kernel source.
4. ``Symbol.tojson``: MXNet 1.x's JSON format, which MXNet itself can load
   (written as ``inspect_graph-symbol.json``).
5. ``mx.viz.plot_network``: the graph drawn by Graphviz as
   ``inspect_graph.png`` when the ``graphviz`` package and its ``dot`` program
   are installed (the DOT text is written as ``inspect_graph.gv`` always).

Run: python examples/inspect_graph.py [--quick] [--out DIR]
"""

from __future__ import annotations

import shutil
import time

import numpy as np
from _example_cli import parse_args
from tqdm import tqdm

import symgrad as mx
import symgrad_compiler
from symgrad import autograd, gluon, nd
from symgrad.gluon import nn


def build_net() -> nn.HybridSequential:
    """A two-layer perceptron with a tanh hidden layer."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(16, activation="tanh"), nn.Dense(3))
    return net


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    net = build_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()  # traced as one Symbol: the recording names its Parameters
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    x = nd.array(rng.normal(size=(32, 8)))
    y = nd.array(rng.integers(0, 3, 32))

    # a few steps first, as in a training loop
    steps = 3 if args.quick else 30
    bar = tqdm(range(steps), desc="steps", unit="step")
    for _ in bar:
        with autograd.record():
            loss = loss_fn(net(x), y).mean()
        loss.backward()
        trainer.step(1)
        bar.set_postfix(loss=f"{float(loss.asscalar()):.4f}")

    # record once more without a backward (which frees the graph it used)
    with autograd.record():
        loss = loss_fn(net(x), y).mean()
    recorded = autograd.get_symbol(loss)
    # MXNet names a recording's variables anonymously (var0, var1, ...), as here
    print("\n== the recorded loss: arguments", recorded.list_arguments())
    print("\n== symgrad_compiler.explain: the loss and its gradients, compiled")
    print(symgrad_compiler.explain(recorded))

    # the network called on a Symbol gives its graph with the Parameters' names
    symbol = net(mx.sym.var("data"))
    print("\n== the network as a Symbol: arguments", symbol.list_arguments())
    print("\n== mx.viz.print_summary")
    mx.viz.print_summary(symbol, shape={"data": x.shape})

    json_path = args.out / "inspect_graph-symbol.json"
    json_path.write_text(symbol.tojson())
    reloaded = mx.sym.load(str(json_path))
    same = reloaded.list_arguments() == symbol.list_arguments()
    print(f"\n== Symbol JSON: {json_path} ({json_path.stat().st_size} bytes), reloads: {same}")

    dot = mx.viz.plot_network(
        symbol, title="inspect_graph", save_format="png", shape={"data": x.shape}
    )
    dot_path = args.out / "inspect_graph.gv"
    dot_path.write_text(dot.source)
    if shutil.which("dot") is not None:
        picture = dot.render(filename="inspect_graph", directory=str(args.out))
        print(f"== graph picture: {picture}")
    else:
        print(f"== Graphviz's dot program is not installed; the DOT text is {dot_path}")
    elapsed = time.perf_counter() - start
    print(f"done in {elapsed:.1f} s")
    print(f"final loss {float(loss.asscalar()):.4f}")


if __name__ == "__main__":
    main()
