"""Command-line flags generated from a config dataclass: one flag per field, help from its docstring.

Every command that exposes a config (``train``, ``finetune``, the sampling flags of the
generating commands) builds its flags here, so a field added to a dataclass becomes a flag
with its type, default and help, and nothing is typed twice::

    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, TrainConfig, exclude={"overrides"})
    cfg = TrainConfig(**dataclass_kwargs(TrainConfig, parser.parse_args()))

Field docs are the string literal right after a field (PEP 257 attribute docstrings), read
from the class's source with :mod:`ast`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, Collection, Iterable

__all__ = ["field_docs", "add_dataclass_flags", "dataclass_kwargs", "flag_name", "given_fields",
           "settings_to_restore"]

_GIVEN = "_kogpt2_given_fields"


def _mark_given(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, _GIVEN, getattr(namespace, _GIVEN, frozenset()) | {dest})


class _Store(argparse.Action):
    """``store``, remembering that the flag was typed (:func:`given_fields`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _mark_given(namespace, self.dest)


class _StoreBool(argparse.BooleanOptionalAction):
    """``--x/--no-x``, remembering that the flag was typed (:func:`given_fields`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _mark_given(namespace, self.dest)


def given_fields(args: argparse.Namespace) -> frozenset[str]:
    """The fields whose flags were typed on the command line (even with their default value)."""
    return getattr(args, _GIVEN, frozenset())


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for a dataclass (and its dataclass bases), docstrings on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # source not available (e.g. frozen apps): flags without help
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def flag_name(field: str) -> str:
    """``max_new_tokens`` → ``--max-new-tokens``."""
    return "--" + field.replace("_", "-")


def _scalar_type(tp: Any) -> tuple[type | None, bool]:
    """(the scalar type argparse should parse, is it a list) for an annotation; None = unsupported."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _scalar_type(args[0]) if len(args) == 1 else (None, False)
    if origin in (list, tuple, typing.Sequence):
        inner = typing.get_args(tp)
        return (inner[0] if inner and inner[0] in (int, float, str) else str), True
    if tp in (int, float, str, bool):
        return tp, False
    return None, False


def add_dataclass_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                        exclude: Iterable[str] = (), only: Iterable[str] | None = None,
                        defaults_none: bool = False, default_notes: dict[str, Any] | None = None,
                        help_overrides: dict[str, str] | None = None) -> list[str]:
    """Add one flag per field of dataclass ``cls``.

    Args:
        parser: parser or argument group to add to.
        cls: the config dataclass.
        exclude: field names that get no flag.
        only: if given, only these fields (in this order).
        defaults_none: every flag defaults to None (the caller layers presets or a model's own
            defaults under what was given); the help then shows ``default_notes`` or the field default.
        default_notes: the default to print in the help for a field (e.g. a preset's value).
        help_overrides: help text replacing a field's docstring.

    Returns:
        The field names that got a flag.

    Booleans become ``--x/--no-x``; ``list`` fields take several values; fields of other types
    (dicts, nested configs) are skipped.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    notes = default_notes or {}
    overrides = help_overrides or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else [n for n in fields if n not in set(exclude)]
    added = []
    for name in names:
        f = fields[name]
        kind, is_list = _scalar_type(hints[name])
        if kind is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        shown = notes.get(name, default)
        text = overrides.get(name, docs.get(name, ""))
        if shown not in (None, "", []):
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        text = text.replace("%", "%%")
        kwargs: dict[str, Any] = {"default": None if defaults_none else default, "help": text, "dest": name}
        if kind is bool:
            kwargs["action"] = _StoreBool
        elif is_list:
            kwargs.update(action=_Store, type=kind, nargs="*", metavar=name.upper())
        else:
            kwargs.update(action=_Store, type=kind, metavar=name.upper() if kind is str else kind.__name__.upper())
        parser.add_argument(flag_name(name), **kwargs)
        added.append(name)
    return added


def dataclass_kwargs(cls: type, args: argparse.Namespace, *, skip_none: bool = False) -> dict[str, Any]:
    """The fields of ``cls`` found on ``args`` (``skip_none``: only those given a value); which were typed:
    :func:`given_fields`."""
    out = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            if skip_none and v is None:
                continue
            out[f.name] = v
    return out


def settings_to_restore(cfg: Any, saved: dict, given: Collection[str] | None, *, skip: Collection[str] = (),
                        defaults: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where dataclass ``cfg`` differs from ``saved`` (the settings a run recorded), split by who set them.

    Args:
        cfg: this command's config.
        saved: the run's recorded fields (missing ones are left alone).
        given: the fields typed on the command line (:func:`given_fields`); None (the Python API): a field
            at its default counts as not set.
        skip: fields never restored (settings of the machine or of this invocation).
        defaults: defaults overriding the dataclass's (e.g. a task's), for ``given`` None.

    Returns:
        ``({field: saved value} the command did not set, {field: this command's value} it set)``.
    """
    untyped, typed = {}, {}
    for f in dataclasses.fields(cfg):
        if f.name in skip or f.name not in saved or getattr(cfg, f.name) == saved[f.name]:
            continue
        mine = getattr(cfg, f.name)
        if given is not None:
            was_typed = f.name in given
        else:
            default = (defaults or {}).get(f.name, f.default_factory() if callable(f.default_factory) else f.default)
            was_typed = mine != default
        if was_typed:
            typed[f.name] = mine
        else:
            untyped[f.name] = saved[f.name]
    return untyped, typed
