"""Train and eval mode, set and restored module by module: the one place the course does it.

Every ``nn.Module`` has its own ``training`` flag, and ``model.train(flag)`` / ``model.eval()``
set it on *every* submodule at once. Fine-tuning with frozen stages needs mixed flags: the
model in train mode, the BatchNorm layers of the frozen stages in eval mode, so that their
ImageNet running statistics stay put (lesson 03). Two habits break that silently:

- borrowing a model for inference and giving it back with ``model.train(was_training)``: the
  frozen BatchNorm layers come back in train mode. :func:`evaluating` records each module's
  own flag and restores exactly those.
- wrapping a model in a new module (a new module starts in train mode) and calling
  ``wrapper.train(model.training)``: that too resets every submodule. :func:`adopt_mode` sets
  the wrapper's own flag only.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

#: Every BatchNorm flavour (1d/2d/3d, SyncBatchNorm, lazy ones) derives from this.
BN_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)

_Modes = list[tuple[nn.Module, bool]]


def is_frozen_bn(module: nn.Module) -> bool:
    """A BatchNorm layer with parameters, none of them trainable.

    A BatchNorm without affine parameters cannot tell us whether it was meant to be frozen,
    so it is left alone.
    """
    params = list(module.parameters(recurse=False))
    return isinstance(module, BN_TYPES) and bool(params) and not any(p.requires_grad for p in params)


def keep_frozen_bn_in_eval(model: nn.Module) -> int:
    """Put every BatchNorm layer whose parameters are all frozen into eval mode.

    Call it after each ``model.train()``: in eval mode BatchNorm normalises with its stored
    ImageNet statistics and stops updating them, which is what "frozen" was meant to say.
    Returns how many layers it switched from train to eval mode (0: nothing to do).
    """
    switched = 0
    for module in model.modules():
        if is_frozen_bn(module) and module.training:
            module.eval()
            switched += 1
    return switched


def start_training(model: nn.Module, freeze_bn: bool = True) -> None:
    """Train mode for a training epoch; with ``freeze_bn``, frozen BatchNorm layers stay in eval."""
    model.train()
    if freeze_bn:
        keep_frozen_bn_in_eval(model)


def _own_modes(model: nn.Module) -> _Modes:
    """Each module of ``model`` (itself included) with its own ``training`` flag."""
    return [(module, module.training) for module in model.modules()]


def _restore_modes(modes: _Modes) -> None:
    """Give each module back the flag :func:`_own_modes` recorded, and nothing else.

    The flag is set directly: ``module.train(flag)`` would recurse into the children and
    overwrite the flags they are about to get back.
    """
    for module, training in modes:
        module.training = training


@contextmanager
def evaluating(model: nn.Module, *, fixed_ok: bool = False) -> Iterator[nn.Module]:
    """Eval mode inside the ``with`` block; afterwards every module's own mode as it was.

    ``fixed_ok=True`` accepts a network whose mode cannot change (a graph loaded from a
    ``torch.export`` file raises ``NotImplementedError`` on ``eval()``: it always runs as it
    was captured, in eval mode); it is then used as it is.
    """
    modes = _own_modes(model)
    try:
        model.eval()
    except NotImplementedError:
        if not fixed_ok:
            raise
    try:
        yield model
    finally:
        _restore_modes(modes)


@contextmanager
def preserving_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Anything may switch modes inside the ``with`` block; afterwards every module's own flag
    is back as it was (the borrowed-model habit ``model.train(was_training)`` cannot do that:
    it would put frozen BatchNorm layers back in train mode)."""
    modes = _own_modes(model)
    try:
        yield model
    finally:
        _restore_modes(modes)


def adopt_mode(wrapper: nn.Module, wrapped: nn.Module) -> None:
    """Give a new ``wrapper`` module the mode of the model it wraps, leaving the model as it is.

    A new module starts in train mode; code that later restores "the mode it found" would
    then switch the wrapped model to train. ``wrapper.train(wrapped.training)`` would fix the
    wrapper but reset every submodule of ``wrapped`` too.
    """
    wrapper.training = wrapped.training


__all__ = [
    "BN_TYPES",
    "adopt_mode",
    "evaluating",
    "is_frozen_bn",
    "keep_frozen_bn_in_eval",
    "preserving_modes",
    "start_training",
]
