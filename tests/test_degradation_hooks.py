"""What is not the operator D lives beside its users as functions of D, and a family's hooks still reach them.

``Degradation`` keeps the paper's mathematics (T, context, forward/step, finalize/observe, mixing schedule, start
states, shift-invariance); ``apply_stepwise``, ``describe``, ``checks.example`` and
``restoration.native_size_problem`` are functions that consult a family's ``_describe``, ``_example`` and
``_native_size_problem`` when it defines them (docs/plugins.md)."""
from __future__ import annotations

import pytest
import torch

import colddiff.degradations as deg
from colddiff.degradations.base import _REGISTRY, Degradation
from colddiff.degradations.checks import check, example
from colddiff.errors import ConfigError
from colddiff.restoration import native_size_problem

NOT_THE_OPERATOR = ("apply_stepwise", "describe", "example", "native_size_problem", "not_shift_invariant",
                    "start_fit")


def test_degradation_holds_the_operator_and_at_most_14_public_names():
    public = [n for n in dir(Degradation) if not n.startswith("_")]
    assert len(public) <= 14, public
    assert not set(NOT_THE_OPERATOR) & set(public)


@pytest.fixture
def hooked():
    """A plug-in-like family (defined outside colddiff, so the registry guards it) with all three hooks."""
    @deg.register("test-hooked")
    class Hooked(Degradation):
        shift_invariant = True

        def __init__(self, T=5, level=1.0, image_size=None, channels=None):
            super().__init__(T, image_size=image_size, channels=channels)
            self.level = level

        def forward(self, x0, t, ctx):
            return x0 * (1 - t.to(x0.dtype).view(-1, 1, 1, 1) / self.T)

        @classmethod
        def _example(cls, image_size=16, channels=1):
            return cls(T=3, level=0.5, image_size=image_size, channels=channels)

        def _describe(self):
            return {"name": self.name, "T": self.T, "level (a fraction)": self.level}

        def _native_size_problem(self, H, W):
            return None if H == W else f"it needs square images (it is {W}×{H})"

    yield Hooked
    _REGISTRY.pop("test-hooked", None)


def test_a_family_s_hooks_replace_the_functions_defaults(hooked):
    D = example(hooked, image_size=12, channels=3)
    assert (D.T, D.level, D.image_size, D.channels) == (3, 0.5, 12, 3)
    assert deg.describe(D) == {"name": "test-hooked", "T": 3, "level (a fraction)": 0.5}
    assert repr(D) == "Hooked(T=3, level (a fraction)=0.5)"
    assert native_size_problem(D, 40, 40) is None
    assert native_size_problem(D, 40, 30) == "it needs square images (it is 30×40)"
    assert all(r.ok is not False for r in check(D))


def test_without_hooks_the_defaults_read_the_declaration(hooked):
    class Plain(Degradation):
        name = "test-hooked"              # registered keywords: T, level, image_size, channels
        level = 0.25

        def forward(self, x0, t, ctx):
            return x0

    D = Plain(T=4)
    assert deg.describe(D) == {"name": "test-hooked", "T": 4, "level": 0.25, "image_size": None, "channels": None}
    assert native_size_problem(D, 8, 8) == Degradation._not_shift_invariant
    Plain.shift_invariant, Plain._not_shift_invariant = False, "it is tied to the frame"
    assert native_size_problem(D, 8, 8) == "it is tied to the frame"
    Plain.shift_invariant = True
    assert native_size_problem(D, 8, 8) is None
    assert example(deg.get_class("mask")).T == 8           # no _example: create(name, T=8)
    assert example(deg.get_class("resolution")).T == 2     # its own _example


def test_a_failing_hook_is_the_plug_in_s_failure(hooked):
    def broken(cls, image_size=16, channels=1):
        raise RuntimeError("no example today")

    hooked._example = classmethod(broken)
    deg.register("test-hooked", override=True)(hooked)     # guarded again as it registers
    with pytest.raises(ConfigError, match=r"'test-hooked' \(Hooked in .*\) failed in _example\(\): RuntimeError"):
        example(hooked)


def test_start_fit_is_defining_a_start_statistic():
    fits = {n for n in deg.names() if deg.start_fit(example(deg.get_class(n)))}
    assert fits == {"blur", "resolution"}

    class Fitted(Degradation):
        def forward(self, x0, t, ctx):
            return x0

        def start_statistic(self, x0):
            return x0.mean((2, 3))

    assert deg.start_fit(Fitted(T=2))
    x0 = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ConfigError, match="has no single-step operator"):
        deg.apply_stepwise(Fitted(T=2), x0, 1)
