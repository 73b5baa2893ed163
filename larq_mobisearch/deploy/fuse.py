"""Export-time fusion of M3's pointwise pairs: two binary 1x1 convs reading the same input become one.

In module M3 each block ends with two binary 1x1 convs ``Cin -> Cout/2`` that read the same tensor ``x``, each
followed by its BatchNorm and shortcut, then a concatenation:

    concat(bn_a(conv_a(x)) + sc_a, bn_b(conv_b(x)) + sc_b)

A convolution's output channels are independent of each other, and so are BatchNorm's channels and the
XNOR-Net weight scale (one mean |W| per output channel), so this equals

    bn(conv(x)) + sc,  conv = [kernel_a | kernel_b] along the output axis, bn = [bn_a | bn_b] per channel,

with ``sc = concat(x, x)`` when ``Cout = 2 Cin`` (each half's shortcut is the whole input) and ``sc = x`` when
``Cout = Cin`` (each half's shortcut is its half of the input channels). Exported, that is one ``LceBconv2d``
per block instead of two, and no output concatenation or input slicing: M3 goes from 39 to 26 binary conv
ops. FLOPs and BOPs are unchanged (the same multiply-accumulates).

`fuse_pointwise_pairs(model)` rewrites the model's functional config (layer by layer, no names assumed: the
pattern is found by structure) and copies the weights; the trained model itself is never modified. Training
and the supernet keep the two halves (the fusion is an export-time transformation of a fixed model).
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from .lowering import binary_convs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PointwisePair:
    """One fusable pair, by layer name. `shortcut` is "none", "input" (Cout = 2 Cin) or "halves" (Cout = Cin)."""

    conv_a: str
    conv_b: str
    bn_a: str
    bn_b: str
    adds: Tuple[str, ...]  # the two shortcut adds, or ()
    slices: Tuple[str, ...]  # the two input slices (shortcut "halves"), or ()
    concat: str
    source: Tuple[Any, ...]  # the inbound entry of x (layer name, node index, tensor index)
    shortcut: str

    @property
    def fused_name(self) -> str:
        """``block3_pw`` for ``block3_pw_a`` / ``block3_pw_b``; else ``<conv_a>_fused``."""
        if self.conv_a.endswith("_a") and self.conv_b == self.conv_a[:-2] + "_b":
            return self.conv_a[:-2]
        return self.conv_a + "_fused"


def _inbound(layer_cfg: Dict[str, Any]) -> List[List[Any]]:
    """The inbound entries [name, node, tensor, kwargs] of a layer called once (else [])."""
    nodes = layer_cfg.get("inbound_nodes") or []
    if len(nodes) != 1:
        return []
    node = nodes[0]
    if node and isinstance(node[0], str):  # TFOpLambda layers: one entry, not a list of entries
        return [node]
    return list(node)


def _source(entry) -> Tuple[Any, ...]:
    return (entry[0], entry[1], entry[2])


def _single_source(layer_cfg) -> Optional[Tuple[Any, ...]]:
    entries = _inbound(layer_cfg)
    if len(entries) != 1 or (len(entries[0]) > 3 and entries[0][3] and layer_cfg["class_name"] != "SlicingOpLambda"):
        return None
    return _source(entries[0])


def _slice_bounds(layer_cfg) -> Optional[Tuple[int, int]]:
    """(start, stop) of a ``x[..., start:stop]`` SlicingOpLambda config, else None."""
    entries = _inbound(layer_cfg)
    if layer_cfg["class_name"] != "SlicingOpLambda" or len(entries) != 1 or len(entries[0]) < 4:
        return None
    spec = (entries[0][3] or {}).get("slice_spec")
    if not isinstance(spec, (tuple, list)) or len(spec) != 2 or spec[0] is not Ellipsis:
        return None
    s = spec[1]
    if not isinstance(s, dict) or s.get("step") not in (None, 1):
        return None
    return s.get("start"), s.get("stop")


def fusable_pairs(model: tf.keras.Model) -> List[PointwisePair]:
    """The M3-style pointwise pairs of `model` (see the module docstring), found by structure.

    A pair: a two-input channel ``Concatenate`` whose inputs are ``BN_k(conv_k(x))`` or
    ``Add(BN_k(conv_k(x)), sc_k)``, k = a, b, where both convs are binary 1x1, stride 1, ungrouped, configured
    alike, read the same tensor ``x``, and every intermediate has no other consumer; ``sc_k`` is ``x`` for
    both, or ``x[..., :C/2]`` and ``x[..., C/2:]`` with ``C/2`` each half's filters.
    """
    config = model.get_config()
    if "layers" not in config or "output_layers" not in config:
        return []  # not a functional model
    layers = {c["name"]: c for c in config["layers"]}
    consumers = defaultdict(int)
    for c in config["layers"]:
        for e in _inbound(c):
            consumers[e[0]] += 1
    for out in config["output_layers"]:
        consumers[out[0]] += 1
    binary = {c.name for c in binary_convs(model)}

    def only_consumer(name: str) -> bool:
        return consumers[name] == 1

    pairs = []
    for concat in config["layers"]:
        if concat["class_name"] != "Concatenate" or concat["config"].get("axis") not in (-1, 3):
            continue
        entries = _inbound(concat)
        if len(entries) != 2:
            continue
        halves = []
        for e in entries:
            name = e[0]
            top = layers.get(name)
            if top is None or not only_consumer(name):
                break
            add, sc = None, None
            if top["class_name"] == "Add":
                ins = _inbound(top)
                if len(ins) != 2:
                    break
                add, bn_name, sc = name, ins[0][0], _source(ins[1])
            else:
                bn_name = name
            bn = layers.get(bn_name)
            if bn is None or bn["class_name"] != "BatchNormalization" or not only_consumer(bn_name):
                break
            conv_src = _single_source(bn)
            conv = layers.get(conv_src[0]) if conv_src else None
            if conv is None or conv["name"] not in binary or not only_consumer(conv["name"]):
                break
            halves.append((conv, bn, add, sc))
        if len(halves) != 2:
            continue
        (ca, ba, aa, sa), (cb, bb, ab, sb) = halves
        xa, xb = _single_source(ca), _single_source(cb)
        if xa is None or xa != xb:
            continue
        cfg_a, cfg_b = _normalized(ca["config"]), _normalized(cb["config"])
        fa, fb = int(cfg_a.pop("filters")), int(cfg_b.pop("filters"))
        if cfg_a != cfg_b or ca["class_name"] != cb["class_name"]:
            continue
        if tuple(np.atleast_1d(cfg_a.get("kernel_size"))) not in ((1,), (1, 1)) or \
                tuple(np.atleast_1d(cfg_a.get("strides", 1))) not in ((1,), (1, 1)) or \
                int(cfg_a.get("groups", 1) or 1) != 1 or cfg_a.get("use_bias"):
            continue
        bcfg_a, bcfg_b = _normalized(ba["config"]), _normalized(bb["config"])
        if bcfg_a != bcfg_b or bcfg_a.get("axis") not in (-1, 3, [3], [-1]):
            continue
        if (aa is None) != (ab is None):
            continue
        slices: Tuple[str, ...] = ()
        if aa is None:
            shortcut = "none"
        elif sa == xa and sb == xa:
            shortcut = "input"
        else:
            sla, slb = layers.get(sa[0]), layers.get(sb[0])
            if sla is None or slb is None or _single_source(sla) != xa or _single_source(slb) != xa or \
                    _slice_bounds(sla) != (0, fa) or _slice_bounds(slb) != (fa, fa + fb) or fa != fb or \
                    not only_consumer(sla["name"]) or not only_consumer(slb["name"]):
                continue
            shortcut, slices = "halves", (sla["name"], slb["name"])
        pairs.append(PointwisePair(ca["name"], cb["name"], ba["name"], bb["name"],
                                   tuple(a for a in (aa, ab) if a), slices, concat["name"], xa, shortcut))
    return pairs


def _normalized(value: Any) -> Any:
    """A layer config without names and build configs (two layers configured alike compare equal)."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if k not in ("name", "build_config")}
    if isinstance(value, (list, tuple)):
        return [_normalized(v) for v in value]
    return value


def _without_build_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_build_config(v) for k, v in value.items() if k != "build_config"}
    return value


def _entry(source: Tuple[Any, ...]) -> List[Any]:
    return [source[0], source[1], source[2], {}]


def _rewire(config: Dict[str, Any], old: str, new: str) -> None:
    for c in config["layers"]:
        nodes = c.get("inbound_nodes") or []
        for node in nodes:
            entries = [node] if node and isinstance(node[0], str) else node
            for e in entries:
                if e[0] == old:
                    e[0] = new
    for out in config["output_layers"]:
        if out[0] == old:
            out[0] = new


def fuse_pointwise_pairs(model: tf.keras.Model, *, name: Optional[str] = None) -> tf.keras.Model:
    """A copy of `model` with every pointwise pair (`fusable_pairs`) fused into one binary conv.

    # Arguments
        model: a fixed functional Keras model (not modified).
        name: name of the new model (default: the model's).

    # Returns
        The fused model with the same weights (concatenated for the fused layers), or `model` itself if it
        has no pair. Its logits equal the original's up to float rounding.
    """
    pairs = fusable_pairs(model)
    if not pairs:
        return model
    from ..nn.registry import custom_objects

    config = copy.deepcopy(model.get_config())
    if name is not None:
        config["name"] = name
    by_name = {c["name"]: c for c in config["layers"]}
    taken = set(by_name)
    fused_weights: Dict[str, List[np.ndarray]] = {}
    for p in pairs:
        conv_name = p.fused_name
        while conv_name in taken:
            conv_name += "_"
        taken.add(conv_name)
        conv = copy.deepcopy(by_name[p.conv_a])
        conv["config"] = _without_build_config(conv["config"])
        conv.pop("build_config", None)
        conv["name"] = conv["config"]["name"] = conv_name
        conv["config"]["filters"] = int(by_name[p.conv_a]["config"]["filters"]) + int(
            by_name[p.conv_b]["config"]["filters"])
        conv["inbound_nodes"] = [[_entry(p.source)]]
        bn = copy.deepcopy(by_name[p.bn_a])
        bn.pop("build_config", None)
        bn["name"] = bn["config"]["name"] = conv_name + "_bn"
        bn["inbound_nodes"] = [[[conv_name, 0, 0, {}]]]
        new_layers = [conv, bn]
        last = bn["name"]
        if p.shortcut != "none":
            sc = p.source
            if p.shortcut == "input":
                dup = copy.deepcopy(by_name[p.concat])
                dup["name"] = dup["config"]["name"] = conv_name + "_shortcut"
                dup["inbound_nodes"] = [[_entry(p.source), _entry(p.source)]]
                new_layers.append(dup)
                sc = (dup["name"], 0, 0)
            add = copy.deepcopy(by_name[p.adds[0]])
            add["name"] = add["config"]["name"] = conv_name + "_add"
            add["inbound_nodes"] = [[[last, 0, 0, {}], _entry(sc)]]
            new_layers.append(add)
            last = add["name"]
        taken.update(c["name"] for c in new_layers)
        removed = {p.conv_a, p.conv_b, p.bn_a, p.bn_b, p.concat, *p.adds, *p.slices}
        index = min(i for i, c in enumerate(config["layers"]) if c["name"] in removed)
        config["layers"] = [c for c in config["layers"] if c["name"] not in removed]
        config["layers"][index:index] = new_layers
        _rewire(config, p.concat, last)
        by_name = {c["name"]: c for c in config["layers"]}
        fused_weights[conv_name] = [np.concatenate([wa, wb], axis=-1) for wa, wb in zip(
            model.get_layer(p.conv_a).get_weights(), model.get_layer(p.conv_b).get_weights())]
        fused_weights[conv_name + "_bn"] = [np.concatenate([wa, wb], axis=0) for wa, wb in zip(
            model.get_layer(p.bn_a).get_weights(), model.get_layer(p.bn_b).get_weights())]
    fused = tf.keras.Model.from_config(config, custom_objects=custom_objects())
    for layer in fused.layers:
        weights = fused_weights.get(layer.name)
        if weights is None and layer.weights:
            weights = model.get_layer(layer.name).get_weights()
        if weights is not None:
            layer.set_weights(weights)
    log.info("Fused %d pointwise pairs of %r (%s)", len(pairs), model.name,
             ", ".join(f"{p.conv_a}+{p.conv_b}" for p in pairs))
    return fused
