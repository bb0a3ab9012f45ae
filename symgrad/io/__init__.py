"""``mx.io``: MXNet 1.x's data iterators over in-memory arrays.

``DataIter`` is the protocol (subclassable), ``NDArrayIter`` batches arrays with
MXNet's last-batch modes, ``ResizeIter`` and ``PrefetchingIter`` wrap other
iterators, ``CSVIter`` and ``MNISTIter`` read files.
"""

from .base import DataBatch, DataDesc, DataIter
from .file_iters import CSVIter, MNISTIter
from .ndarray_iter import NDArrayIter
from .wrappers import PrefetchingIter, ResizeIter

__all__ = [
    "DataBatch",
    "DataDesc",
    "DataIter",
    "NDArrayIter",
    "PrefetchingIter",
    "ResizeIter",
    "CSVIter",
    "MNISTIter",
]
