"""What a binary MobileNet is: quantizers, layers, the M1/M2/M3 architecture and its search space, the fixed
models, the weight-sharing supernet and BatchNorm recalibration."""

from . import quantizers  # noqa: F401  (registers the custom quantizers with larq)
from .layers import BinaryGroupConv2D, GroupConv2D, custom_objects  # noqa: F401
from .reactnet import LearnableThreshold, RPReLU  # noqa: F401
from .specs import (Architecture, ConvSpec, BlockSpec, architecture, allowed_group_counts,  # noqa: F401
                    baseline_genotype, mobinet_genotype)
from .space import Genotype, SearchSpace, encode, decode  # noqa: F401
from .models import (build_model, build_network, fixed_conv_factory, float_conv_factory,  # noqa: F401
                     network_options)
from .supernet import (  # noqa: F401
    SearchableBinaryConv2D,
    SearchableConv2D,
    RandomGenotype,
    build_supernet,
    extract_subnet,
    get_genotype,
    set_genotype,
)
from .batchnorm import recalibrate_batchnorm  # noqa: F401
