"""Plot data files as tables: CSV/TSV (with or without a header row), JSON and YAML (a
list of records, or a mapping holding one, as DVC accepts). A clone brings these files,
so every problem is a PlotError with one line, and sizes are bounded."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlv import fsio
from mlv.errors import MlvError

MAX_BYTES = fsio.PARAMS_LIMIT  # largest plot file (data or image) read
MAX_POINTS = 1_000_000  # rows of one file, and points of one plot
MAX_COLUMNS = 1_000  # fields of one file: a line each, far more than a plot can show
IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
TABLES = (".csv", ".tsv", ".json", ".yaml", ".yml")

Value = float | str  # a cell: a number, or text (categorical)


class PlotError(MlvError):
    """A plot that cannot be drawn: a malformed data file, a field that is not there."""


@dataclass
class Table:
    """Rows of one data file; `columns` in the order they first appear."""

    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Value]] = field(default_factory=list)


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGES)


def is_table(path: str) -> bool:
    return path.lower().endswith(TABLES)


def parse(raw: bytes, name: str, header: bool = True) -> Table:
    """The table in a plot file's bytes, by the file's extension."""
    lower = name.lower()
    if lower.endswith((".csv", ".tsv")):
        return _delimited(raw, name, "\t" if lower.endswith(".tsv") else ",", header)
    if lower.endswith(".json"):
        return _records(_json(raw, name), name)
    if lower.endswith((".yaml", ".yml")):
        from mlv import yamlio

        data, _ = yamlio.load(_text(raw, name), name, PlotError)
        return _records(data, name)
    raise PlotError(f"{name}: not a plot file mlv can read (CSV, TSV, JSON, YAML or an "
                    "image)", hint="write the plot data as CSV, TSV, JSON or YAML")


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlotError(f"{name}: not a text file (not UTF-8)") from None


def _json(raw: bytes, name: str) -> Any:
    import json

    try:
        data = json.loads(_text(raw, name))
    except RecursionError:
        raise PlotError(f"{name}: nested too deeply") from None
    except ValueError as exc:
        raise PlotError(f"{name}: invalid JSON: {exc}") from None
    return data


def _delimited(raw: bytes, name: str, sep: str, header: bool) -> Table:
    import csv

    lines = _text(raw, name).splitlines()
    table = Table()
    try:
        reader = csv.reader(lines, delimiter=sep, strict=True)
        first = next(reader, None)
        if first is None:
            return table
        _check_columns(len(first), name)
        if header:
            table.columns = _unique([c.strip() for c in first])
            body: Any = reader
        else:
            table.columns = [str(i) for i in range(len(first))]
            body = [first, *reader]
        for cells in body:
            if not cells or cells == [""]:
                continue
            if len(cells) != len(table.columns):
                raise PlotError(f"{name}: line {reader.line_num} has {len(cells)} fields, "
                                f"the first line {len(table.columns)}",
                                hint=f"fix {name}: every row needs one value per column")
            _add_row(table, dict(zip(table.columns, (_value(c) for c in cells))), name)
    except csv.Error as exc:
        raise PlotError(f"{name}: malformed {'TSV' if sep == chr(9) else 'CSV'}: {exc}",
                        hint=f"fix {name}") from None
    return table


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for n in names:
        base, i = n, 1
        while n in seen:
            i += 1
            n = f"{base}_{i}"
        seen.add(n)
        result.append(n)
    return result


def _records(data: Any, name: str) -> Table:
    found = _find_records(data, 0)
    if found is None:
        raise PlotError(f"{name}: no list of records ({{field: value}} objects) in it",
                        hint="write a list of records, or {name: [records]} as DVC does")
    table = Table()
    known: set[str] = set()
    for record in found:
        _check_columns(len(record), name)
        row = {str(k): c for k, c in ((k, _value(v)) for k, v in record.items())
               if c is not None}
        for key in row:
            if key not in known:
                known.add(key)
                table.columns.append(key)
        _check_columns(len(known), name)
        _add_row(table, row, name)
    return table


def _check_columns(count: int, name: str) -> None:
    if count > MAX_COLUMNS:
        raise PlotError(f"{name}: more than {MAX_COLUMNS:,} fields, the most mlv plots",
                        hint=f"plot fewer fields (split {name})")


def _find_records(data: Any, depth: int) -> list[dict[Any, Any]] | None:
    """The first list of records, depth first (DVC reads `{"train": [{…}, …]}`)."""
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return data
    if isinstance(data, dict) and depth < 8:
        for value in data.values():
            found = _find_records(value, depth + 1)
            if found is not None:
                return found
    return None


def _add_row(table: Table, row: dict[str, Any], name: str) -> None:
    if len(table.rows) >= MAX_POINTS:
        raise PlotError(f"{name}: more than {MAX_POINTS:,} rows, the most mlv plots",
                        hint=f"plot fewer points (sample {name})")
    table.rows.append(row)


def _value(cell: Any) -> Any:
    """A number where the cell holds one (text like "0.5" too), else the text; None for
    what cannot be drawn (nested data, NaN, infinity, empty)."""
    if isinstance(cell, bool):
        return float(cell)
    if isinstance(cell, (int, float)):
        try:
            number = float(cell)
        except OverflowError:  # an integer beyond a float
            return None
        return number if math.isfinite(number) else None
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else None
    return None
