"""Command lines generated from frozen dataclasses: one flag per field, with the field's type, default and help.

Every settings dataclass behind a command (`TrainConfig` and `ModelConfig` for
`colorize.train`, `AblationConfig`, `BenchSettings`) declares its fields with `option(...)`,
so a flag, its default and its help text live in one place:

    @dataclass(frozen=True)
    class Settings:
        size: int = option(256, "image side in pixels")
        data: tuple[str, ...] = option((), "image folder; repeat for several")

    parser = argparse.ArgumentParser()
    add_arguments(parser, options(Settings))
    settings = Settings(**given(parser.parse_args(argv)))

Flags the user did not type stay absent from `given(...)`, so the dataclass's defaults fill
them in, or, for `colorize.train`, a TOML file layered under the flags.

A field's type decides its flag: bool -> `--name/--no-name`, `tuple[str, ...]` -> a repeatable
`--name PATH`, int, float and str -> `--name VALUE` (with `choices` when given); `parse` turns
the text into the value (e.g. durations such as "2h") and may raise `ValueError` with a sentence.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] | None = None,
    parse: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag (lists become tuples, so the dataclass stays frozen)."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "parse": parse}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default=tuple(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Option:
    """One field of a settings dataclass, as the command line and the config files see it."""

    name: str
    kind: type  # bool, int, float, str, or tuple (of str, given by repeating the flag; other tuples by `parse`)
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    parse: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def options(cls: type, *, skip: Sequence[str] = ()) -> list[Option]:
    """The `Option`s of a dataclass declared with `option(...)`, in field order."""
    hints = typing.get_type_hints(cls)
    found = []
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        if "help" not in item.metadata:
            raise TypeError(f"{cls.__name__}.{item.name} has no help text: declare it with colorize.cli.option(...).")
        hint = hints[item.name]
        kind = tuple if typing.get_origin(hint) is tuple else hint
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        found.append(Option(item.name, kind, default, item.metadata["help"], item.metadata["choices"], item.metadata["parse"]))
    return found


def _flag_type(option: Option) -> Callable[[str], Any]:
    if option.parse is None:
        return {tuple: str}.get(option.kind, option.kind)
    parse = option.parse

    def parse_flag(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:  # argparse shows the sentence after the flag's name
            raise argparse.ArgumentTypeError(str(error)) from None

    parse_flag.__name__ = option.name
    return parse_flag


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, found: Sequence[Option]) -> None:
    """One flag per option; a flag the user does not type is left out of the parsed namespace."""
    for option in found:
        default = list(option.default) if isinstance(option.default, tuple) else option.default
        help_text = option.help if default in ("", [], None) else f"{option.help} (default: {default!r})"
        common = dict(dest=option.name, default=argparse.SUPPRESS, help=help_text)
        if option.kind is bool:
            parser.add_argument(option.flag, action=argparse.BooleanOptionalAction, **common)
        elif option.kind is tuple and option.parse is None:
            parser.add_argument(option.flag, action="append", metavar="PATH", **common)
        else:
            metavar = None if option.choices else option.name.upper()
            parser.add_argument(option.flag, type=_flag_type(option), choices=option.choices, metavar=metavar, **common)


def given(namespace: argparse.Namespace) -> dict[str, Any]:
    """The flags the user typed, as field values (repeated flags as tuples)."""
    return {name: tuple(value) if isinstance(value, list) else value for name, value in vars(namespace).items()}
