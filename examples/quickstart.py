"""The examples of MXNet's autograd documentation, run with symgrad.

Run: python examples/quickstart.py
"""

import symgrad as mx
from symgrad import autograd, nd


def section(title: str) -> None:
    print(f"\n== {title}")


section("x * x + 1, then backward: the gradient 2x")
x = nd.array([1, 2, 3, 4])
x.attach_grad()
with autograd.record():
    y = x * x + 1
y.backward()
print("y =", y.asnumpy(), " dy/dx =", x.grad.asnumpy())

section("Dropout in train mode and in predict mode")
data = nd.ones((2, 6))
with autograd.record(train_mode=True):
    train_out = nd.Dropout(data, p=0.5)
with autograd.record(train_mode=False):
    predict_out = nd.Dropout(data, p=0.5)
print("train:  ", train_out.asnumpy().tolist())
print("predict:", predict_out.asnumpy().tolist())

section("Higher order: grad(exp(x) + x, create_graph=True), then backward")
x = nd.array([1.0])
x.attach_grad()
with autograd.record():
    y = nd.elemwise_add(nd.exp(x), x)
    (dy_dx,) = autograd.grad(y, [x], create_graph=True)
dy_dx.backward()
print("dy/dx =", dy_dx.asnumpy(), " d2y/dx2 =", x.grad.asnumpy())


section("A stable sigmoid as an autograd.Function")


class Sigmoid(autograd.Function):
    def forward(self, x):
        y = 1 / (1 + nd.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        (y,) = self.saved_tensors
        return dy * y * (1 - y)


x = nd.array([-2.0, 0.0, 2.0])
x.attach_grad()
with autograd.record():
    y = Sigmoid()(x)
y.backward()
print("sigmoid =", y.asnumpy(), " grad =", x.grad.asnumpy())

section("The recorded graph as an MXNet Symbol")
x = nd.array([1, 2, 3])
x.attach_grad()
with autograd.record():
    z = nd.tanh(x * 2 + 1).sum()
symbol = autograd.get_symbol(z)
print("arguments:", symbol.list_arguments(), " outputs:", symbol.list_outputs())
print(symbol.tojson()[:200], "...")
print("\nsymgrad", mx.__version__, "quick start done.")
