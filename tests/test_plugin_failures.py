"""A plug-in's failure is the plug-in's: whatever its code raises, sys.exit() included, at import or inside a
method, ends colddiff with one line that names the plug-in and a non-zero status, and writes nothing.
Also the seam that makes it so: the degradation base knows no plug-in machinery, a plug-in class is wrapped
once, as it registers, and a built-in family is never wrapped."""
import os
import subprocess
import sys
import textwrap

import pytest

import colddiff.degradations as deg
from colddiff import plugins
from colddiff.cli import main
from colddiff.degradations.base import _REGISTRY, Degradation
from colddiff.errors import ConfigError
from conftest import installed_plugin_env

# A plug-in that leaves through sys.exit() in the method named by WHERE (or at import, WHERE = "import").
QUITTER = textwrap.dedent('''
    import sys
    from colddiff.degradations import Degradation, register

    WHERE = {where!r}
    if WHERE == "import":
        sys.exit({code})


    @register({name!r})
    class Quitter(Degradation):
        deterministic = WHERE != "context"

        def __init__(self, T=5, image_size=None, channels=None):
            if WHERE == "__init__":
                sys.exit({code})
            super().__init__(T, image_size=image_size, channels=channels)

        def context(self, x0, generator=None):
            if WHERE == "context":
                sys.exit({code})

        def forward(self, x0, t, ctx):
            if WHERE == "forward":
                sys.exit({code})
            return x0 * (1 - t.view(-1, 1, 1, 1).to(x0) / self.T)
''')


def quitter(tmp_path, where, code=0):
    name = f"quit-{where.strip('_')}-{code}"
    path = tmp_path / f"quitter_{where.strip('_')}_{code}.py"
    path.write_text(QUITTER.format(where=where, code=code, name=name))
    return name, path


@pytest.fixture(autouse=True)
def forget_quitters():
    yield
    for name in [n for n in _REGISTRY if n.startswith("quit-")]:
        _REGISTRY.pop(name)


@pytest.mark.parametrize("code", [0, None, 3])
def test_a_plugin_that_exits_while_loading_is_named_and_colddiff_fails(tmp_path, capsys, code):
    _, path = quitter(tmp_path, "import", code)
    assert main(["--plugin", str(path), "degradations"]) == 2
    err = capsys.readouterr().err
    shown = "" if code is None else repr(code)
    assert f"plug-in {path} failed to load: it called sys.exit({shown})" in err and err.count("\n") == 1


@pytest.mark.parametrize("where", ["__init__", "context", "forward"])
def test_a_plugin_that_exits_in_a_method_fails_the_command_and_writes_nothing(tmp_path, capsys, where):
    name, path = quitter(tmp_path, where)
    out = tmp_path / "o.png"
    rc = main(["--plugin", str(path), "degrade", "-d", name, "--input", "mnist-5k", "--n", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"the plug-in degradation {name!r} (Quitter in {path}) failed in {where}(): it called sys.exit(0)" in err
    assert f"colddiff --plugin {path} check-degradation {name}" in err
    assert not out.exists() and {p.name for p in tmp_path.iterdir()} <= {path.name, "__pycache__"}


def test_the_process_exits_non_zero_when_a_plugin_calls_sys_exit_0(tmp_path):
    name, path = quitter(tmp_path, "forward")
    env = {k: v for k, v in os.environ.items() if k != "COLDDIFF_PLUGINS"}
    r = subprocess.run([sys.executable, "-m", "colddiff", "--plugin", str(path), "degrade", "-d", name, "--input",
                        "mnist-5k", "--n", "2", "--out", str(tmp_path / "o.png")], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("colddiff: error: the plug-in degradation") and "sys.exit(0)" in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_an_installed_plugin_that_exits_on_import_is_named(tmp_path):
    env = installed_plugin_env(tmp_path, "quitpkg", "import sys\nsys.exit(0)\n", "quit")
    r = subprocess.run([sys.executable, "-m", "colddiff", "degradations"], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr == ("colddiff: error: the installed plug-in 'quit' (quitpkg) failed to load: it called "
                        "sys.exit(0) (a plug-in must raise an exception, not exit)\n")


def test_the_library_raises_the_plugins_failure_too(tmp_path):
    name, path = quitter(tmp_path, "forward", 5)
    plugins.load_plugin(str(path))
    D = deg.create(name)
    import torch

    with pytest.raises(ConfigError, match=r"failed in forward\(\): it called sys.exit\(5\)"):
        D(torch.zeros(1, 1, 4, 4), 2)


def test_a_plugin_class_is_wrapped_once_as_it_registers_and_a_built_in_never(tmp_path):
    name, path = quitter(tmp_path, "forward")
    cls = plugins.load_plugin(str(path)).Quitter
    assert deg.get_class(name) is cls
    assert cls.forward._plugin_guarded and cls.__init__._plugin_guarded and cls.context._plugin_guarded
    assert cls.step is Degradation.step            # not the plug-in's: "no single-step operator" stays sayable
    before = cls.forward
    plugins.guard(cls, Degradation)                # a second registration wraps nothing again
    assert cls.forward is before and not getattr(cls.forward.__wrapped__, "_plugin_guarded", False)
    for built_in in deg.names():
        klass = deg.get_class(built_in)
        if klass.__module__.startswith("colddiff."):
            assert not any(getattr(getattr(klass, m, None), "_plugin_guarded", False) for m in plugins.GUARDED)
    with pytest.raises(ConfigError, match="has no single-step operator"):
        deg.apply_stepwise(cls(), __import__("torch").zeros(1, 1, 4, 4), 1)
