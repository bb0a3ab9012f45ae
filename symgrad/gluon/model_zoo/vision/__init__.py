"""``gluon.model_zoo.vision``: MXNet 1.9.1's image-classification networks, by
family (AlexNet, DenseNet, Inception v3, MobileNet v1/v2, ResNet v1/v2,
SqueezeNet, VGG), and ``get_model(name, **kwargs)`` by MXNet's names.

Layers, prefixes and parameter names are MXNet's, so ``load_parameters`` reads
files written by MXNet's ``save_parameters``, and ``pretrained=True`` reads
MXNet's published files from a local folder (nothing is downloaded).

>>> import symgrad as mx
>>> net = mx.gluon.model_zoo.vision.get_model("resnet18_v1", classes=10, prefix="resnet_")
>>> net.output.weight.name, net.output.weight.shape
('resnet_dense0_weight', (10, 512))
>>> net.features[4][0].body[0].weight.name
'resnet_stage1_conv0_weight'
"""

from __future__ import annotations

from typing import Any

from ...block import HybridBlock
from .alexnet import *  # noqa: F401,F403
from .alexnet import alexnet
from .densenet import *  # noqa: F401,F403
from .densenet import densenet121, densenet161, densenet169, densenet201
from .inception import *  # noqa: F401,F403
from .inception import inception_v3
from .mobilenet import *  # noqa: F401,F403
from .mobilenet import (
    mobilenet0_5,
    mobilenet0_25,
    mobilenet0_75,
    mobilenet1_0,
    mobilenet_v2_0_5,
    mobilenet_v2_0_25,
    mobilenet_v2_0_75,
    mobilenet_v2_1_0,
)
from .resnet import *  # noqa: F401,F403
from .resnet import (
    resnet18_v1,
    resnet18_v2,
    resnet34_v1,
    resnet34_v2,
    resnet50_v1,
    resnet50_v2,
    resnet101_v1,
    resnet101_v2,
    resnet152_v1,
    resnet152_v2,
)
from .squeezenet import *  # noqa: F401,F403
from .squeezenet import squeezenet1_0, squeezenet1_1
from .vgg import *  # noqa: F401,F403
from .vgg import vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn

# get_model's names (MXNet's) and the constructors they call
_models = {
    "resnet18_v1": resnet18_v1,
    "resnet34_v1": resnet34_v1,
    "resnet50_v1": resnet50_v1,
    "resnet101_v1": resnet101_v1,
    "resnet152_v1": resnet152_v1,
    "resnet18_v2": resnet18_v2,
    "resnet34_v2": resnet34_v2,
    "resnet50_v2": resnet50_v2,
    "resnet101_v2": resnet101_v2,
    "resnet152_v2": resnet152_v2,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "vgg11_bn": vgg11_bn,
    "vgg13_bn": vgg13_bn,
    "vgg16_bn": vgg16_bn,
    "vgg19_bn": vgg19_bn,
    "alexnet": alexnet,
    "densenet121": densenet121,
    "densenet161": densenet161,
    "densenet169": densenet169,
    "densenet201": densenet201,
    "squeezenet1.0": squeezenet1_0,
    "squeezenet1.1": squeezenet1_1,
    "inceptionv3": inception_v3,
    "mobilenet1.0": mobilenet1_0,
    "mobilenet0.75": mobilenet0_75,
    "mobilenet0.5": mobilenet0_5,
    "mobilenet0.25": mobilenet0_25,
    "mobilenetv2_1.0": mobilenet_v2_1_0,
    "mobilenetv2_0.75": mobilenet_v2_0_75,
    "mobilenetv2_0.5": mobilenet_v2_0_5,
    "mobilenetv2_0.25": mobilenet_v2_0_25,
}


def get_model(name: str, **kwargs: Any) -> HybridBlock:
    """The model-zoo network called ``name`` (case-insensitive), built with
    ``kwargs``.

    Parameters
    ----------
    name : str
        One of MXNet's names: ``alexnet``, ``densenet121/161/169/201``,
        ``inceptionv3``, ``mobilenet1.0/0.75/0.5/0.25``,
        ``mobilenetv2_1.0/0.75/0.5/0.25``, ``resnet18/34/50/101/152_v1/_v2``,
        ``squeezenet1.0/1.1``, ``vgg11/13/16/19`` and ``vgg11_bn`` ... ``vgg19_bn``.
    **kwargs
        The constructor's: ``pretrained`` (read ``<root>/<name>-<hash>.params``),
        ``ctx``, ``root`` (default ``~/.mxnet/models``), ``classes``, ``prefix``...

    Raises
    ------
    ValueError
        For a name that is not in the zoo (the message lists the names).
    """
    name = name.lower()
    if name not in _models:
        options = "\n\t".join(sorted(_models))
        raise ValueError(f"Model {name} is not supported. Available options are\n\t{options}")
    return _models[name](**kwargs)
