"""Degradations D(x0, t): the cold (and hot) forward processes of Cold Diffusion.

    >>> import torch, colddiff.degradations as deg
    >>> D = deg.create("blur", T=20, kernel_size=11, sigma=7.0)
    >>> x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    >>> x_t = D(x0, 10)                       # closed form, same cost at every t

Add your own with ``@register("name")`` on a :class:`Degradation` subclass.
"""
from .base import (Degradation, apply_stepwise, context_cat, context_slice, context_to, create, describe,
                   generative_names, get_class, names, parameters, register, start_fit)
from . import base, blur, mask, resolution, snow, desaturate, noise, animorph  # noqa: F401  (registration)
from .. import plugins

# Plug-ins reach the registry through its two seams: a plug-in class is wrapped as it registers, so its failures
# name it, and a name that is not registered is looked for in the installed and the named plug-ins.
base.plug_in(guard=lambda cls: plugins.guard(cls, Degradation), find=plugins.load_installed)

__all__ = ["Degradation", "create", "get_class", "names", "generative_names", "parameters", "register",
           "context_to", "context_slice", "context_cat", "apply_stepwise", "describe", "start_fit"]
