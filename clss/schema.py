"""Declared types, ranges and choices of configuration values, and the one validator that checks them.

A :class:`Spec` sits next to the default it describes: in a dataclass through :func:`param` (method
hyper-parameters, the optimiser, :class:`clss.config.TrainConfig`) or in a plain ``{key: Spec}`` table
(model and schedule keyword arguments). :func:`check_mapping` validates a whole mapping against such a
table, naming the offending key in every message (``method_params.rank_weight must be a float >= 0,
got 'abc'``) and refusing unknown keys with the known ones and the closest match.

Values are coerced where the meaning is unambiguous: an int where a float is expected, an
integer-valued float (``1e3``) where an int is expected, and a numeric string (``"1e-3"``, which YAML
1.1 reads as a string) where a number is expected. Booleans are never numbers.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Spec", "check_dataclass", "check_mapping", "check_value", "param", "specs_of"]

_ARTICLE = {"float": "a float", "int": "an integer", "str": "a string", "bool": "true or false",
            "int_list": "a non-empty list of integers", "mapping": "a mapping of keys",
            "names": "a comma-separated string or a non-empty list of column names"}


@dataclass(frozen=True)
class Spec:
    """What a configuration value may be.

    ``kind``: ``"float"``, ``"int"``, ``"str"``, ``"bool"``, ``"int_list"`` (each element checked
    against the bounds), ``"names"`` (column names: a comma-separated string or a list) or
    ``"mapping"``. ``ge``/``gt``/``le``/``lt``: bounds of numbers.
    ``choices``: the accepted values (``None`` among them allows null). ``optional``: null is
    accepted besides the kind. ``words``: strings accepted besides the kind (``"all"``). ``check``: an
    extra predicate on the coerced value, described by ``describe`` (which then replaces the generated
    description).
    """

    kind: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    words: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    describe: str | None = None

    def description(self) -> str:
        """E.g. ``"a float >= 0"``, ``"an integer >= 1 or null"``, ``"one of 'mse', 'l1'"``."""
        if self.describe is not None:
            return self.describe
        if self.choices is not None:
            return "one of " + ", ".join("null" if c is None else repr(c) for c in self.choices)
        options = [_ARTICLE[self.kind] + self._bounds(), *map(repr, self.words)]
        if self.optional:
            options.append("null")
        return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]

    def _bounds(self) -> str:
        low = (f"> {_num(self.gt)}" if self.gt is not None else
               f">= {_num(self.ge)}" if self.ge is not None else None)
        high = (f"< {_num(self.lt)}" if self.lt is not None else
                f"<= {_num(self.le)}" if self.le is not None else None)
        if low and high:
            left = "(" if self.gt is not None else "["
            right = ")" if self.lt is not None else "]"
            lo = self.gt if self.gt is not None else self.ge
            hi = self.lt if self.lt is not None else self.le
            return f" in {left}{_num(lo)}, {_num(hi)}{right}"
        if low or high:
            return " " + (low or high)  # type: ignore[operator]
        return ""

    def _in_bounds(self, x: float) -> bool:
        return ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
                and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def param(default: Any = dataclasses.MISSING, kind: str = "float", *,
          default_factory: Any = dataclasses.MISSING, **constraints: Any) -> Any:
    """A dataclass field with a default and its :class:`Spec` (keyword arguments as in :class:`Spec`)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"spec": Spec(kind, **constraints)})


def specs_of(cls: type) -> dict[str, Spec]:
    """The :class:`Spec` of every field of a dataclass declared with :func:`param`."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls) if "spec" in f.metadata}


def _number(value: Any) -> float | None:
    """``value`` as a finite float (numeric strings included), or ``None`` when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_value(name: str, value: Any, spec: Spec) -> Any:
    """``value`` coerced to ``spec``'s kind, or ValueError ``"{name} must be {description}, got …"``."""
    if value is None and (spec.optional or (spec.choices is not None and None in spec.choices)):
        return None
    if isinstance(value, str) and value in spec.words:
        return value
    out = _coerce(value, spec)
    if out is _INVALID or (spec.check is not None and not spec.check(out)):
        raise ValueError(f"{name} must be {spec.description()}, got {value!r}")
    return out


_INVALID = object()


def _coerce(value: Any, spec: Spec) -> Any:
    if spec.choices is not None:
        return value if any(value == c and type(value) is type(c) for c in spec.choices) else _INVALID
    if spec.kind == "bool":
        return value if isinstance(value, bool) else _INVALID
    if spec.kind == "str":
        return value if isinstance(value, str) and value.strip() else _INVALID
    if spec.kind == "mapping":
        return dict(value) if isinstance(value, Mapping) else _INVALID
    if spec.kind == "names":  # column names: "a,b" or ["a", "b"]
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list | tuple) or not names:
            return _INVALID
        names = [n.strip() if isinstance(n, str) else n for n in names]
        return list(names) if all(isinstance(n, str) and n for n in names) else _INVALID
    if spec.kind == "int_list":
        if not isinstance(value, list | tuple) or not value:
            return _INVALID
        items = [_coerce(v, dataclasses.replace(spec, kind="int")) for v in value]
        return _INVALID if any(v is _INVALID for v in items) else items
    x = _number(value)
    if x is None or not spec._in_bounds(x):
        return _INVALID
    if spec.kind == "int":
        return int(x) if x.is_integer() else _INVALID
    return x


def check_mapping(values: Mapping[str, Any] | None, specs: Mapping[str, Spec], where: str = "",
                  *, allow_unknown: bool = False) -> dict[str, Any]:
    """Validate and coerce every key of ``values`` against ``specs``.

    Parameters
    ----------
    values : mapping of key to value (``None``: empty)
    specs : mapping of key to :class:`Spec`
    where : prefix naming the mapping in messages, e.g. ``"method_params."``
    allow_unknown : keep keys without a spec unchecked instead of refusing them

    Returns
    -------
    dict
        The coerced values (only the keys given).

    Raises
    ------
    ValueError
        On the first unknown key or invalid value, naming it.
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{where.rstrip('.') or 'the configuration'} must be a mapping of keys, got "
                         f"{type(values).__name__} {values!r}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in specs:
            if allow_unknown:
                out[key] = value
                continue
            raise ValueError(unknown_key_message(f"{where}{key}", str(key), specs))
        out[key] = check_value(f"{where}{key}", value, specs[key])
    return out


def unknown_key_message(name: str, key: str, known: Mapping[str, Any] | list[str]) -> str:
    """``unknown key NAME; did you mean X? known keys: …`` (the suggestion only when one is close)."""
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {name!r}{hint} (known keys: {', '.join(names)})"


def check_dataclass(obj: Any, where: str = "") -> None:
    """Validate (and coerce in place) every :func:`param` field of a dataclass instance."""
    for name, spec in specs_of(type(obj)).items():
        setattr(obj, name, check_value(f"{where}{name}", getattr(obj, name), spec))
