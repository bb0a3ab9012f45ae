"""``autograd.Function``: an op whose forward and backward the user writes.

>>> import symgrad as mx
>>> class Double(mx.autograd.Function):
...     def forward(self, x):
...         return x * 2
...     def backward(self, dy):
...         return dy * 2
>>> x = mx.nd.array([1, 2]); x.attach_grad()
>>> with mx.autograd.record():
...     y = Double()(x)
>>> y.backward(); x.grad.asnumpy()
array([2., 2.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

from symgrad_compiler import TensorType

from . import _state
from .base import MXNetError
from .ndarray.ndarray import NDArray, invoke


class _Callback:
    """Adapts a Function to the compiler's callback-op protocol (numpy in, out).

    Each call of a Function makes its own callback, so a program holding one is
    never reused: ``cacheable = False`` keeps it out of the program cache, which
    would otherwise keep every Function and its saved arrays alive.
    """

    cacheable = False

    def __init__(self, function: Function, outputs: tuple[NDArray, ...]):
        self.function = function
        self.outputs = outputs
        self.output_types = tuple(TensorType(o.shape, o._data.dtype) for o in outputs)

    def forward(self, *arrays: Any) -> Any:
        # The forward already ran eagerly; a replay runs it again.
        if self.outputs is not None:
            outputs, self.outputs = self.outputs, None
            return tuple(o._data for o in outputs)
        with _paused():
            result = self.function.forward(*(NDArray(a) for a in arrays))
        return tuple(o._data for o in _as_tuple(result))

    def backward(self, *grads: Any) -> Any:
        with _paused():
            result = self.function.backward(*(NDArray(g) for g in grads))
        results = _as_tuple(result)
        if not all(isinstance(r, NDArray) for r in results):
            raise MXNetError("Function.backward must return NDArrays")
        return tuple(r._data for r in results)


class _paused:
    def __enter__(self):
        self._saved = _state.recording.get()
        _state.recording.set(False)

    def __exit__(self, *exc):
        _state.recording.set(self._saved)


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


class Function:
    """Subclass and define ``forward`` and ``backward`` on NDArrays to make an op
    with a hand-written gradient. Call an instance once on its inputs.

    ``forward`` runs with recording off; ``backward`` receives one gradient per
    output and returns one per input. ``save_for_backward`` keeps arrays for it.
    """

    def __init__(self) -> None:
        self._saved_tensors: tuple = ()

    def save_for_backward(self, *args: Any) -> None:
        """Keep ``args`` for ``backward`` (read them as ``self.saved_tensors``)."""
        self._saved_tensors = args

    @property
    def saved_tensors(self) -> tuple:
        """What ``save_for_backward`` kept."""
        return self._saved_tensors

    def forward(self, *inputs: NDArray) -> Any:
        """The forward computation; override it."""
        raise NotImplementedError

    def backward(self, *output_grads: NDArray) -> Any:
        """The gradients of the inputs given the outputs' gradients; override it."""
        raise NotImplementedError

    def __call__(self, *inputs: NDArray) -> Any:
        with _paused():
            outputs = _as_tuple(self.forward(*inputs))
        if not (_state.recording.get() and any(x._entry is not None for x in inputs)):
            return outputs[0] if len(outputs) == 1 else list(outputs)
        recorded = invoke("_CustomFunction", inputs, {"callback": _Callback(self, outputs)})
        return recorded
