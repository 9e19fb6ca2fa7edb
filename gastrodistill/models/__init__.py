"""The networks trained in the inner loop of distillation and by the evaluation.

Every model takes ``(in_channels, num_classes, image_size)`` plus its own options, an
``init: xavier|kaiming`` scheme and ``zca_kernel`` (``None``, or a fixed local-ZCA filter ``[C][k][k]`` as
its first layer: ``models/zca.py``, filled in from ``data.zca``); ``conf/model/*.yaml`` are Hydra partials
over these constructors.
None holds running statistics, so all of them unroll functionally (see ``layers.py``).
"""

from gastrodistill.models.alexnet import AlexNet
from gastrodistill.models.convnet import ConvNet
from gastrodistill.models.init import SCHEMES, initialize
from gastrodistill.models.lenet import LeNet
from gastrodistill.models.resnet import ResNet18

__all__ = ["SCHEMES", "AlexNet", "ConvNet", "LeNet", "ResNet18", "initialize"]
