"""BatchNorm folded into the convolution before it: the same frozen network, cheaper to run.

In ``eval()`` mode a BatchNorm layer is a fixed per-channel affine map,
``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``. When it directly follows
a convolution, that map can be multiplied into the convolution's weights and bias once, and
the network computes the same function (up to float rounding, about 1e-6 relative) without
the BatchNorm pass: one fewer read and write of every activation. On a CPU that pass is a
noticeable share of a small network's time (MobileNetV2 has 52 of them), and
:func:`tlcourse.features.extract_features` runs frozen backbones a lot.

It is only valid while nothing trains: a folded copy has no BatchNorm left to put in train
mode, and its convolutions no longer hold the pretrained weights. So the course folds a
*copy* for feature extraction and never the model you fine-tune.
"""
from __future__ import annotations

import copy

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import CourseError


class _ConvsAsLeaves(fx.Tracer):
    """Trace through everything except convolutions, subclasses included (EfficientNet-Lite's
    ``Conv2dStaticSamePadding`` pads inside its own forward): a convolution must stay one
    module call for the BatchNorm after it to be folded into it."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


def _replace_submodule(root: nn.Module, qualified_name: str, new: nn.Module) -> None:
    parent_name, _, child = qualified_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` (its BatchNorm layers in eval mode) with every ``Conv2d -> BatchNorm2d`` pair folded.

    A pair is folded only where the BatchNorm reads the convolution's output and nothing else
    does, and each of the two modules is called exactly once; anything else is left as it is.
    ``module`` itself is not changed. A module that :mod:`torch.fx` cannot trace (Python
    control flow that depends on the input) comes back as an unfolded copy: the same function,
    only without the speed-up. The folded copy is a flat :class:`torch.fx.GraphModule`: forward
    hooks registered on the original's blocks do not run in it.
    """
    if any(m.training for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        raise CourseError(
            "fold_batchnorm() needs the module in eval mode: in train mode BatchNorm normalises "
            "with each batch's own statistics, which cannot be folded into fixed weights. "
            "Call module.eval() first."
        )
    work = copy.deepcopy(module)
    try:
        graph = _ConvsAsLeaves().trace(work)
    except Exception:  # untraceable: keep the same maths, unfolded
        return work
    folded = fx.GraphModule(work, graph, class_name=type(module).__name__ + "Folded")
    modules = dict(folded.named_modules())
    calls: dict[str, int] = {}
    for node in folded.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for node in list(folded.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        bn = modules[node.target]
        src = node.args[0] if node.args else None
        if not (
            isinstance(src, fx.Node)
            and src.op == "call_module"
            and isinstance(modules[src.target], nn.Conv2d)
            and len(src.users) == 1
            and calls[src.target] == 1
            and calls[node.target] == 1
            and bn.track_running_stats
            and bn.running_mean is not None
        ):
            continue
        _replace_submodule(folded, src.target, fuse_conv_bn_eval(modules[src.target], bn))
        node.replace_all_uses_with(src)
        folded.graph.erase_node(node)
    folded.graph.lint()
    folded.delete_all_unused_submodules()
    folded.recompile()
    return folded.eval()


__all__ = ["fold_batchnorm"]
