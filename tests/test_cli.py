"""colorize.cli: the one way a settings dataclass becomes a command line (train, ablation, bench)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from colorize import cli
from colorize.config import parse_duration


@dataclass(frozen=True)
class Example:
    size: int = cli.option(256, "image side in pixels")
    rate: float = cli.option(0.5, "a rate")
    name: str = cli.option("unet", "architecture", choices=("unet", "encdec"))
    data: tuple[str, ...] = cli.option((), "image folder; repeat for several")
    fast: bool = cli.option(True, "take the fast path")
    limit: float = cli.option(0.0, "time limit such as '2h'", parse=parse_duration)


def parse(argv: list[str]) -> Example:
    parser = argparse.ArgumentParser(prog="example")
    cli.add_arguments(parser, cli.options(Example))
    return Example(**cli.given(parser.parse_args(argv)))


def test_flags_come_typed_from_the_fields_and_unset_ones_keep_the_dataclass_default():
    assert parse([]) == Example()
    settings = parse(["--size", "64", "--rate", "0.25", "--name", "encdec", "--data", "a", "--data", "b", "--no-fast", "--limit", "1h30m"])
    assert settings == Example(size=64, rate=0.25, name="encdec", data=("a", "b"), fast=False, limit=5400.0)


def test_only_typed_flags_are_given():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, cli.options(Example))
    assert cli.given(parser.parse_args(["--data", "x", "--fast"])) == {"data": ("x",), "fast": True}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "big"], "argument --size: invalid int value: 'big'"),
        (["--name", "gan"], "argument --name: invalid choice: 'gan'"),
        (["--limit", "soon"], "argument --limit: 'soon' is not a duration"),
    ],
)
def test_bad_values_are_refused_by_the_parser_with_a_sentence(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_help_shows_each_fields_help_and_default():
    parser = argparse.ArgumentParser(prog="example")
    cli.add_arguments(parser, cli.options(Example))
    text = " ".join(parser.format_help().split())
    assert "--size SIZE image side in pixels (default: 256)" in text
    assert "--fast, --no-fast take the fast path (default: True)" in text
    assert "--data PATH image folder; repeat for several" in text and "(default: [])" not in text


def test_a_field_without_help_is_a_programming_error():
    @dataclass(frozen=True)
    class Bare:
        size: int = 3

    with pytest.raises(TypeError, match="Bare.size has no help text"):
        cli.options(Bare)


def test_model_config_help_lives_on_its_fields_and_reaches_train_help():
    from colorize.config import build_parser
    from colorize.models import ModelConfig

    text = " ".join(build_parser().format_help().split())
    for item in dataclasses.fields(ModelConfig):
        help_text = item.metadata["help"]
        assert help_text and " ".join(help_text.split()) in text, item.name
    assert "--generator {unet,resunet,resnet18-unet,encdec}" in text


@pytest.mark.parametrize(
    "module, settings",
    [("colorize.ablation", "AblationConfig"), ("colorize.bench", "BenchSettings"), ("colorize.config", "TrainConfig")],
)
def test_every_command_has_one_flag_per_field(module, settings):
    import importlib

    loaded = importlib.import_module(module)
    cls = getattr(loaded, settings)
    flags = {action.dest for action in loaded.build_parser()._actions}
    names = {item.name for item in dataclasses.fields(cls)} - {"model"}
    assert names <= flags
