"""Rules 3 and 4 of the third reliability audit (issue 30): every whole number that enters has an upper
bound, stated in its message (validate.py), and any config file the TOML parser cannot read is one
ConfigError naming the file (config.read_toml)."""
import argparse
import dataclasses
import typing

import pytest

from colddiff import cli, validate
from colddiff.config import RunConfig, read_toml
from colddiff.errors import ConfigError

# whole-number options checked elsewhere, against a bound that depends on the run (and why)
CHECKED_LATER = {
    ("evaluate", "--t"): "runs.check_t: 1..T of the run",
    ("quickstart", "--t"): "runs.check_t: 1..T of the quickstart run",
    ("demo", "--port"): "demo.serve: a port number 1..65535 (or 0), in one line",
}
# options of every command checked elsewhere
OPTIONS_CHECKED_LATER = {"--threads": "threads.parse_threads: 1..MAX_THREADS, read from argv before torch loads"}


def _commands(parser, path=()):
    """(command path, action) for every option of every (sub-)command of the CLI's parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, path + (name,))
        else:
            yield path, action


def _whole_options():
    out = []
    for path, a in _commands(cli.build_parser()):
        bounds = getattr(a.type, "bounds", None)
        if a.type is int or (bounds is not None and a.type.__name__ != "a number"):
            out.append((" ".join(path), a.option_strings[0] if a.option_strings else a.dest, a))
    return out


def test_every_whole_number_option_has_an_upper_bound():
    """Enumerated from the parser: a new integer option without a bound fails here."""
    opts = _whole_options()
    assert len(opts) > 20  # the enumeration found the CLI's options
    unbounded = []
    for cmd, opt, a in opts:
        if (cmd.split()[-1] if cmd else "", opt) in CHECKED_LATER or opt in OPTIONS_CHECKED_LATER:
            continue
        if a.choices is not None:
            continue
        if a.type is int or a.type.bounds[1] is None:
            unbounded.append(f"{cmd} {opt}")
    assert not unbounded, f"integer options without an upper bound: {unbounded}"


@pytest.mark.parametrize("argv,bound", [
    (["reproduce", "table1", "--steps", "1" + "0" * 30], "100000000"),
    (["quickstart", "--steps", "99999999999999999999"], "100000000"),
    (["generate", "RUN", "--out", "x", "--n", "10" + "0" * 20], "1000000000"),
    (["generate", "RUN", "--out", "x", "--seed", str(2**64)], str(2**32 - 1)),
    (["generate", "RUN", "--out", "x", "--batch-size", "1000000"], "65536"),
    (["export", "RUN", "--out", "x", "--n", "100000"], "256"),
    (["restore", "RUN", "--input", "a", "--out", "x", "--tile", "10" + "0" * 12], "16384"),
    (["data", "prepare", "mnist", "--size", "1000000"], "4096"),
])
def test_cli_numbers_beyond_their_bound_are_one_usage_line(argv, bound, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(argv)
    assert e.value.code == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"at most {bound}" in err and "Traceback" not in err


def _int_fields():
    """section.key for every int (or list of int) field of the config dataclasses."""
    out = []
    for sec in dataclasses.fields(RunConfig):
        cls = sec.default_factory if sec.default_factory is not dataclasses.MISSING else None
        if not dataclasses.is_dataclass(cls):
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, typing.List[int]):
                out.append(f"{sec.name}.{f.name}")
    return out


def test_every_int_config_key_has_bounds():
    """Enumerated from the dataclasses: a new int field without an entry in validate.INT_KEYS fails here."""
    keys = _int_fields()
    assert "train.steps" in keys and "model.dim_mults" in keys
    assert sorted(set(keys) - set(validate.INT_KEYS)) == []
    assert sorted(set(validate.INT_KEYS) - set(keys)) == []  # no stale entries
    for key, (lo, hi) in validate.INT_KEYS.items():
        assert lo <= hi < 2**63, key


@pytest.mark.parametrize("key", sorted(validate.INT_KEYS))
def test_each_int_config_key_refuses_a_value_past_its_bound(key):
    lo, hi = validate.INT_KEYS[key]
    cfg = RunConfig()
    sec, name = key.split(".")
    big = 10**30 if hi < 10**30 else hi + 1
    setattr(getattr(cfg, sec), name, [big] if isinstance(getattr(getattr(cfg, sec), name), list) else big)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    said = str(e.value).split(", got")[0]
    assert key in said and (f"at most {hi}" in said or str(hi) in said or "out of range" in said), str(e.value)


def test_train_steps_beyond_int64_from_set_and_toml(tmp_path):
    from colddiff.presets import resolve_config

    with pytest.raises(ConfigError, match="train.steps must be at most 100000000"):
        resolve_config("mnist5k-blur", None, ["train.steps=1e30"])
    f = tmp_path / "c.toml"
    f.write_text("[train]\nsteps = 9223372036854775807\n")
    with pytest.raises(ConfigError, match="train.steps must be at most"):
        resolve_config("mnist5k-blur", f, [])
    assert resolve_config("mnist5k-blur", None, ["train.steps=100000000"]).train.steps == 10**8


def test_the_seed_rule_everywhere(tmp_path):
    """One rule (0..2^32-1) for the config, the CLI and the Python API's seeds."""
    assert validate.check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="seed"):
            validate.check_seed(bad)
    cfg = RunConfig()
    cfg.train.seed = 2**32
    with pytest.raises(ConfigError, match="train.seed must be at most 4294967295"):
        cfg.validate()
    assert cli.SEED(str(2**32 - 1)) == 2**32 - 1


# ---------------------------------------------------------------------------- rule 4: config files
@pytest.mark.parametrize("content,why", [
    (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"x = " + b"{ a = " * 3000 + b"1" + b" }" * 3000 + b"\n", "nested too deeply"),
    (b"[train]\nsteps = 10 # \xff\xfe latin-1\n", "not UTF-8"),
    (b"[train\nsteps = 1\n", "not valid TOML"),
    (b"[train]\ndescription = '" + b"x" * (2 << 20) + b"'\n", "larger than"),
])
def test_unreadable_toml_is_one_config_error_naming_the_file(tmp_path, content, why):
    f = tmp_path / "bad.toml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        read_toml(f)
    assert str(f) in str(e.value) and why in str(e.value)
    assert "\n" not in str(e.value).strip()


def test_toml_that_is_a_folder_or_missing(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        read_toml(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "none.toml")


def test_deep_toml_through_the_cli_exits_2(tmp_path, capsys):
    f = tmp_path / "deep.toml"
    f.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert cli.main(["train", "--preset", "mnist5k-blur", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "internal error" not in err
    assert not (tmp_path / "r").exists()


def test_degradation_parameters_follow_the_rules_too():
    """A family's own seed follows the seed rule; its other whole numbers stay within int32."""
    import colddiff.degradations as deg

    with pytest.raises(ConfigError, match="snow parameter seed must be at most 4294967295"):
        deg.create("snow", image_size=16, channels=1, seed=2**70)
    with pytest.raises(ConfigError, match="blur parameter kernel_size must be at most 2147483647"):
        deg.create("blur", image_size=16, channels=1, kernel_size=10**30 + 1, padding="zero")
    assert deg.create("snow", image_size=16, channels=1, seed=2**32 - 1).T == 200  # the largest seed is taken


def test_threads_is_bounded_where_it_is_read():
    from colddiff.threads import MAX_THREADS, parse_threads

    with pytest.raises(ConfigError, match=f"between 1 and {MAX_THREADS}"):
        parse_threads(str(10**30))
