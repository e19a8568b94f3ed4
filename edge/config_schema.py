"""Configuration sections that validate themselves, and the one TOML loader that builds them.

A section is a frozen dataclass deriving from `ConfigSection`. Each field says what it accepts in
its metadata, written with `setting(...)` (ranges, choices, patterns) or `path_setting(...)` (a
file or folder, resolved against the config file's folder on load). `ConfigSection.__post_init__`
checks the field types, then that metadata, then the section's own `_check(checks)` for rules
that tie several fields together; so a section built by the loader, built in code or changed with
`dataclasses.replace` is checked the same way.

A failed check is a `ConfigValueError`, one line naming the dotted key, the value and what is
allowed. `build_section` (the loader) re-words it with the file name and the key's place in the
file; built in code, the key is prefixed with the section's `SECTION`. The loader knows nothing
about particular keys: the device (`edge.config`) and central (`central.config`) describe theirs
in their dataclasses and share this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import sys
import typing
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 devices
    import tomli as tomllib

__all__ = ["ConfigSection", "ConfigValueError", "Checks", "setting", "path_setting", "origin_field",
           "build_section", "read_toml", "where", "show"]

#: metadata keys (private to this module and the sections that use the helpers below)
_LO, _HI, _CHOICES, _PATTERN, _NONEMPTY, _ALLOWED = "lo", "hi", "choices", "pattern", "nonempty", "allowed"
_PATH, _MUST, _WORDS, _ORIGIN = "path", "must", "words", "origin"


def setting(default: Any = MISSING, *, lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] | None = None, pattern: re.Pattern[str] | None = None,
            nonempty: bool = False, allowed: str | None = None, default_factory: Any = MISSING) -> Any:
    """A section field with what it accepts: a number in [lo, hi], one of `choices`, a string that
    matches `pattern` or is not blank (`nonempty`). `allowed` replaces the generated "expected ..."
    text of the error."""
    meta: dict[str, Any] = {}
    if lo is not None or hi is not None:
        meta[_LO], meta[_HI] = lo, hi
    if choices is not None:
        meta[_CHOICES] = tuple(choices)
    if pattern is not None:
        meta[_PATTERN] = pattern
    if nonempty:
        meta[_NONEMPTY] = True
    if allowed is not None:
        meta[_ALLOWED] = allowed
    return field(default=default, default_factory=default_factory, metadata=meta)


def path_setting(default: Any = "", *, must: str | None = None, words: tuple[str, ...] = (),
                 credentials: bool = False, nonempty: bool = False, allowed: str | None = None,
                 default_factory: Any = MISSING) -> Any:
    """A field holding a path (a string, or a list of strings).

    On load a relative path is resolved against the config file's folder (with `credentials`:
    against $CREDENTIALS_DIRECTORY when systemd set it, as LoadCredential= expects). `must`: what
    a non-empty value must name, checked whenever the section is built: "readable" (a file this
    process can read), "file" or "dir" (an existing one). `words`: values that name no file
    ("default", "none"), neither resolved nor checked. An empty string means "not set" unless
    `nonempty`.
    """
    if must not in (None, "readable", "file", "dir"):
        raise ValueError(f"path_setting(must={must!r}): use 'readable', 'file' or 'dir'")  # programming error
    meta: dict[str, Any] = {_PATH: "credentials" if credentials else "config", _MUST: must, _WORDS: tuple(words)}
    if nonempty:
        meta[_NONEMPTY] = True
    if allowed is not None:
        meta[_ALLOWED] = allowed
    if default_factory is not MISSING:
        default = MISSING
    return field(default=default, default_factory=default_factory, metadata=meta)


def origin_field() -> Any:
    """The `origin` field of a whole config: the file it was loaded from ("" when built in code).
    Not a key of the file; ignored when comparing configs."""
    return field(default="", compare=False, metadata={_ORIGIN: True})


class ConfigValueError(ConfigError):
    """A field of a section holds a value it does not accept. `key` is relative to the section
    that raised (`owner`); `str(err)` names it with the owner's `SECTION` prefix."""

    def __init__(self, owner: type, key: str, value: Any, allowed: str) -> None:
        self.owner, self.key, self.value, self.allowed = owner, key, value, allowed
        super().__init__(describe("", dotted(getattr(owner, "SECTION", ""), key), value, allowed))


class Checks:
    """What a section's `_check` uses to refuse a value; every failure names the field."""

    def __init__(self, owner: type) -> None:
        self.owner = owner

    def fail(self, name: str, value: Any, allowed: str) -> NoReturn:
        raise ConfigValueError(self.owner, name, value, allowed)

    def range(self, name: str, value: float, lo: float | None, hi: float | None, allowed: str | None = None) -> None:
        """`value` must lie in [lo, hi] (None: unbounded on that side)."""
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            kind = "an integer" if isinstance(value, int) else "a number"
            if allowed is None:
                allowed = (f"{kind} from {lo:g} to {hi:g}" if lo is not None and hi is not None
                           else f"{kind} >= {lo:g}" if lo is not None else f"{kind} <= {hi:g}")
            self.fail(name, value, allowed)

    def choice(self, name: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.fail(name, value, "one of " + ", ".join(repr(a) for a in allowed))


class ConfigSection:
    """Base of every configuration dataclass: validates on construction (see the module doc).

    SECTION: the section's dotted place in its file ("mqtt.tls"), for messages about a section
    built in code. `_check(checks)`: rules over several fields, run after the per-field ones.
    """

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        cls = type(self)
        checks = Checks(cls)
        for f, hint in _fields(cls):
            value = getattr(self, f.name)
            typed = _typed(checks, f.name, hint, value)
            if typed is not value:
                object.__setattr__(self, f.name, typed)  # frozen: an int given for a float field
            _check_metadata(checks, f, typed)
        self._check(checks)

    def _check(self, checks: Checks) -> None:
        """Rules that tie several fields together (none by default)."""


# -- the loader ---------------------------------------------------------------------------------
def read_toml(path: str | os.PathLike, missing_fix: str) -> dict:
    """Parse a TOML file into nested dicts; a one-line `ConfigError` when it is missing
    (`missing_fix` says how to get one), unreadable or not valid TOML."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist; {missing_fix}") from None
    except OSError as err:
        raise ConfigError(f"config file {p} cannot be read ({err.strerror}); check its permissions") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text; save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {p} is not valid TOML: {err}; fix the syntax there") from None


def build_section(cls: type, table: Any, *, origin: str = "", base_dir: str | os.PathLike | None = None,
                  prefix: str = "") -> Any:
    """Build section `cls` from one TOML table (nested dicts), recursing into sub-sections.

    Unknown and missing required keys are refused; path fields are resolved against `base_dir`;
    every other check is the section's own. origin: the file name for messages; prefix: the
    table's dotted place in the file ("" for the top level).
    """
    if not isinstance(table, dict):
        where_ = prefix or "the top level"
        raise ConfigError(f"{where(origin)}{where_} must be a table ([{prefix}]), got {show(table)}")
    base = Path(base_dir) if base_dir is not None else None
    fields = {f.name: (f, hint) for f, hint in _fields(cls) if not f.metadata.get(_ORIGIN)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where(origin)}key {dotted(prefix, unknown[0])} is not known; allowed in "
            f"{'[' + prefix + ']' if prefix else 'the top level'}: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, (f, hint) in fields.items():
        if name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                fix = f"add it under [{prefix}]" if prefix else f"add a [{name}] table"
                raise ConfigError(f"{where(origin)}key {dotted(prefix, name)} is required; {fix}")
            continue
        value = table[name]
        if isinstance(hint, type) and issubclass(hint, ConfigSection):
            value = build_section(hint, value, origin=origin, base_dir=base, prefix=dotted(prefix, name))
        elif f.metadata.get(_PATH):
            value = _resolve_paths(f, value, base)
        kwargs[name] = value
    kwargs.update({f.name: origin for f, _ in _fields(cls) if f.metadata.get(_ORIGIN)})
    try:
        return cls(**kwargs)
    except ConfigValueError as err:
        # a default sub-section that refused itself is named by its own SECTION
        key = dotted(prefix, err.key) if err.owner is cls else dotted(err.owner.SECTION, err.key)
        raise ConfigError(describe(origin, key, err.value, err.allowed)) from None


# -- helpers ----------------------------------------------------------------------------------------
def where(origin: str) -> str:
    """The start of every config message: which file (if any)."""
    return f"config {origin}: " if origin else "config: "


def show(value: Any) -> str:
    """A value as a message shows it: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def dotted(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def describe(origin: str, key: str, value: Any, allowed: str) -> str:
    return f"{where(origin)}key {key} = {show(value)} is not allowed: expected {allowed}"


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def _typed(checks: Checks, name: str, hint: Any, value: Any) -> Any:
    """`value` if it has the field's type (an int for a float field comes back as a float)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            checks.fail(name, value, f"a {hint.__name__}")
        return value
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            checks.fail(name, value, "a table of name = value pairs")
        return value
    if origin is list:  # only lists of strings are used
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            checks.fail(name, value, "a list of strings ([\"a\", \"b\"])")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            checks.fail(name, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            checks.fail(name, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            checks.fail(name, value, "a number")
        return value if type(value) is float else float(value)
    if hint is str:
        if not isinstance(value, str):
            checks.fail(name, value, "a string (in quotes)")
        return value
    raise TypeError(f"unsupported config field type {hint!r} of {name}")  # programming error


def _check_metadata(checks: Checks, f: dataclasses.Field, value: Any) -> None:
    meta, name = f.metadata, f.name
    allowed = meta.get(_ALLOWED)
    if meta.get(_NONEMPTY) and not value.strip():
        checks.fail(name, value, allowed or "a non-empty value")
    if _LO in meta:
        checks.range(name, value, meta[_LO], meta[_HI], allowed)
    if _CHOICES in meta and value not in meta[_CHOICES]:
        checks.fail(name, value, allowed or "one of " + ", ".join(repr(a) for a in meta[_CHOICES]))
    if _PATTERN in meta and not meta[_PATTERN].match(value):
        checks.fail(name, value, allowed or f"text matching {meta[_PATTERN].pattern}")
    must = meta.get(_MUST)
    if must:
        for path in value if isinstance(value, list) else [value]:
            if not path or path in meta[_WORDS]:
                continue
            ok = (os.access(path, os.R_OK) if must == "readable"
                  else Path(path).is_file() if must == "file" else Path(path).is_dir())
            if not ok:
                checks.fail(name, path, allowed or {"readable": "a readable file", "file": "an existing file",
                                                    "dir": "an existing directory"}[must])


def _resolve_paths(f: dataclasses.Field, value: Any, base_dir: Path | None) -> Any:
    """A path field's value with relative paths made absolute (anything else: left for the type
    check to refuse)."""
    if isinstance(value, list):
        return [_resolve(f, v, base_dir) if isinstance(v, str) else v for v in value]
    return _resolve(f, value, base_dir) if isinstance(value, str) else value


def _resolve(f: dataclasses.Field, value: str, base_dir: Path | None) -> str:
    if not value or value in f.metadata[_WORDS]:
        return value
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return str(p)
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if f.metadata[_PATH] == "credentials" and cred_dir:
        return str(Path(cred_dir) / p)
    return str(base_dir / p) if base_dir is not None else str(p)
