"""Config dataclasses <-> command line and config.json.

A docstring written under a dataclass field doubles as its `--help` text (sparsify style).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from interp import InterpError

C = TypeVar("C")


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written directly under each field of a dataclass."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    docs[stmt.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _argparse_kwargs(tp: Any) -> dict[str, Any]:
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"choices": list(typing.get_args(tp)), "type": type(typing.get_args(tp)[0])}
    if origin in (tuple, list):
        return {"nargs": "+", "type": typing.get_args(tp)[0]}
    if tp in (int, float, str):
        return {"type": tp}
    if tp is Path:
        return {"type": Path}
    raise TypeError(f"unsupported config field type {tp!r}")


def build_parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f.name,
            default=default,
            help=docs.get(f.name, " ").replace("%", "%%"),
            **_argparse_kwargs(hints[f.name]),
        )
    return parser


def config_file_defaults(cls: type, path: str) -> dict[str, Any]:
    """Field values from a JSON file (e.g. a run's config.json); unknown keys are an error."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InterpError(f"cannot read config file {path}: {err}") from err
    values.pop("config_class", None)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InterpError(f"config file {path} has unknown field(s) {unknown}")
    return values


def parse_config(cls: type[C], argv: list[str] | None = None) -> C:
    """Parse the command line into `cls`; unknown flags are an error (argparse exits 2).

    `--config FILE` loads field values from JSON first (a saved config.json works); flags override them.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = build_parser(cls)
    parser.add_argument("--config", help="JSON file of field values (flags given too override it)")
    if known.config:
        parser.set_defaults(**config_file_defaults(cls, known.config))
    args = parser.parse_args(rest)
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name)
        if typing.get_origin(_unwrap_optional(hints[f.name])) is tuple and value is not None:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    def convert(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple | list):
            return [convert(x) for x in v]
        if dataclasses.is_dataclass(v):
            return to_dict(v)
        return v

    return {f.name: convert(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def save_config(cfg: Any, run_dir: Path) -> Path:
    path = Path(run_dir) / "config.json"
    payload = {"config_class": type(cfg).__name__, **to_dict(cfg)}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def cli_main(main: Any, cls: type, argv: list[str] | None = None) -> None:
    """Entry point for experiment scripts: parse, run, and turn bad input into one line and exit 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would bury the one-line error
    try:
        cfg = parse_config(cls, argv)
        run_dir = main(cfg)
    except InterpError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
    sys.stdout.write(f"{run_dir}\n")


def setup_logging() -> None:
    """INFO from the toolkit's own loggers, WARNING from everything else (kaleido, ray, ...)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("interp", "experiments", "__main__"):
        logging.getLogger(name).setLevel(logging.INFO)
