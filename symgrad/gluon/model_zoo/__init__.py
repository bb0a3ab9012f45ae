"""``gluon.model_zoo``: MXNet 1.9.1's predefined networks (``vision``, with
``vision.get_model``) and the local store of their pretrained weights
(``model_store``)."""

from . import model_store as model_store  # noqa: I001
from . import vision as vision

__all__ = ["model_store", "vision"]
