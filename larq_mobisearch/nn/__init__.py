"""What a binary MobileNet is: quantizers, layers, the M1/M2/M3 architecture (`specs`) and its search space
(`space`), the fixed models, the weight-sharing supernet and BatchNorm recalibration.

`specs` and `space` are pure Python; the other modules import TensorFlow. Names load on first use.
"""

import importlib

_API = {
    "BinaryGroupConv2D": "layers", "GroupConv2D": "layers", "custom_objects": "registry",
    "LearnableThreshold": "reactnet", "RPReLU": "reactnet",
    "Architecture": "specs", "ConvSpec": "specs", "BlockSpec": "specs", "architecture": "specs",
    "allowed_group_counts": "specs", "mobinet_genotype": "specs", "baseline_genotype": "specs",
    "round_channels": "specs", "width_candidates": "specs",
    "Genotype": "space", "SearchSpace": "space", "encode": "space", "decode": "space",
    "build_model": "models", "build_network": "models", "fixed_conv_factory": "models",
    "float_conv_factory": "models", "network_options": "models",
    "SearchableBinaryConv2D": "supernet", "SearchableConv2D": "supernet", "RandomGenotype": "supernet",
    "build_supernet": "supernet", "extract_subnet": "supernet", "get_genotype": "supernet",
    "set_genotype": "supernet", "assign_genotype": "supernet",
    "ElasticBinaryConv2D": "elastic", "ElasticConv2D": "elastic", "ElasticBatchNorm": "elastic",
    "ChannelFit": "layers",
    "recalibrate_batchnorm": "batchnorm",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value
