"""Degradations D(x0, t): the cold (and hot) forward processes of Cold Diffusion.

    >>> import torch, colddiff.degradations as deg
    >>> D = deg.create("blur", T=20, kernel_size=11, sigma=7.0)
    >>> x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    >>> x_t = D(x0, 10)                       # closed form, same cost at every t

Add your own with ``@register("name")`` on a :class:`Degradation` subclass.
"""
from .base import (Degradation, context_cat, context_slice, context_to, create, generative_names, get_class, names,
                   parameters, register)
from . import blur, mask, resolution, snow, desaturate, noise, animorph  # noqa: F401  (registration)

__all__ = ["Degradation", "create", "get_class", "names", "generative_names", "parameters", "register",
           "context_to", "context_slice", "context_cat"]
