"""Gates: conditions on metrics that `mlv ci` checks, written in mlv.yaml as

    gates:
      - metrics.json:accuracy >= 0.9
      - metrics.json:accuracy >= base - 0.01
      - eval/scores.json:loss.val < base * 1.05

`FILE:KEY OP VALUE`: KEY is dotted (as `mlv metrics show` prints it), OP one of
`>= > <= < == !=`, VALUE a number, or `base` (the same metric at the base revision)
with an optional `+ N`, `- N` or `* N`."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlv.errors import UsageError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne}
# one way only to split the digits (`\d+\.?\d*` had n): a long number fails in linear time
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_GATE = re.compile(r"\s*(?P<file>[^\s:][^:]*?):(?P<key>[^\s<>=!]+)\s*(?P<op>>=|<=|==|!=|>|<)"
                   rf"\s*(?:(?P<number>{_NUMBER})|base(?:\s*(?P<arith>[-+*])\s*"
                   rf"(?P<operand>{_NUMBER}))?)\s*\Z")


class GateError(UsageError):
    """A gate that cannot be checked as written (exit 2)."""


@dataclass(frozen=True)
class Gate:
    text: str  # as written
    file: str
    key: str
    op: str
    number: float | None  # the bound, when it is a number
    arith: str | None = None  # with `base`: "+", "-", "*" or None
    operand: float = 0.0

    @property
    def uses_base(self) -> bool:
        return self.number is None

    def bound(self, base: float) -> float:
        """The value the metric is compared with, given the base value."""
        if self.number is not None:
            return self.number
        if self.arith == "+":
            return base + self.operand
        if self.arith == "-":
            return base - self.operand
        if self.arith == "*":
            return base * self.operand
        return base


def parse(text: str, where: str = "mlv.yaml") -> Gate:
    """A gate from its text; GateError says what is wrong with it."""
    found = _GATE.match(text)
    if not found:
        raise GateError(f"{where}: gate {text!r} does not parse",
                        hint="write FILE:KEY OP VALUE, for example "
                             "'metrics.json:accuracy >= base - 0.01' (OP is one of "
                             ">= > <= < == !=; VALUE a number or base, base + N, base - N, "
                             "base * N)")
    number = found["number"]
    gate = Gate(text.strip(), found["file"].strip(), found["key"], found["op"],
                float(number) if number is not None else None, found["arith"],
                float(found["operand"]) if found["operand"] else 0.0)
    if not math.isfinite(gate.operand if gate.number is None else gate.number):
        raise GateError(f"{where}: gate {text!r} holds a number beyond a float's range",
                        hint="write a number between -1.7e308 and 1.7e308")
    return gate


@dataclass
class Checked:
    """A gate and its outcome. `passed` is None when it could not be checked for a
    reason that is not a failure of the change (no base value for a new metric)."""

    gate: Gate
    value: Any = None
    base: Any = None
    bound: float | None = None
    passed: bool | None = False
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate.text, "value": self.value, "base": self.base,
                "bound": self.bound,
                "result": {True: "passed", False: "failed", None: "skipped"}[self.passed],
                "why": self.why}


def check(gate: Gate, value: Any, base: Any, has_base: bool) -> Checked:
    """Compare the metric's value (MISSING_VALUE when the metric is not there) with the
    gate's bound. `has_base` is False when no base revision was compared."""
    done = Checked(gate, None if value is MISSING_VALUE else value,
                   None if base is MISSING_VALUE else base)
    if value is MISSING_VALUE:
        done.why = f"{gate.file} has no key {gate.key}"
        return done
    if not _number(value):
        done.why = f"{gate.key} is {value!r}, not a number"
        return done
    if gate.uses_base:
        if not has_base or base is MISSING_VALUE:
            done.passed = None
            done.why = "no base value to compare with (a new metric?)"
            return done
        if not _number(base):
            done.why = f"{gate.key} at the base is {base!r}, not a number"
            return done
    done.bound = gate.bound(float(base) if gate.uses_base else 0.0)
    done.passed = OPS[gate.op](float(value), done.bound)
    if not done.passed:
        done.why = f"{gate.key} is {_short(value)}, not {gate.op} {_short(done.bound)}"
    return done


class _Missing:
    def __repr__(self) -> str:
        return "MISSING_VALUE"


MISSING_VALUE: Any = _Missing()


def _number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond a float's range: not comparable
        return False


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
