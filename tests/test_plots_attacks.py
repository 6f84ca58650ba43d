"""Attacks on `mlv plots`: a clone's plot data that breaks the axis maths or takes
quadratic time, and a clone that plants a symlink where the plots are written."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from conftest import Result, clone, commit_all, make_tree, one_error, run_mlv

Mlv = Callable[..., Result]
NS = "{http://www.w3.org/2000/svg}"


def origin(tmp_path: Path, mlv_repo: Path, tree: dict[str, str | bytes | dict]) -> Path:
    """The attacker's repository with `tree` committed, cloned as the victim's."""
    make_tree(mlv_repo, tree)
    commit_all(mlv_repo)
    return clone(mlv_repo, tmp_path)


def drawn(res: Result) -> None:
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "unexpected" not in res.output, res.output


def ticks(path: Path) -> list[str]:
    root = ET.fromstring(path.read_bytes())
    return [e.text or "" for e in root.iter(f"{NS}text") if e.get("text-anchor") == "end"]


def test_whole_number_axes_are_drawn(mlv_repo: Path, mlv: Mlv) -> None:
    # 0..10 makes a tick step of 2: it was an int, and labelling it crashed
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv\n", "a.csv": "epoch,loss\n0,1\n10,30\n"})
    drawn(mlv("plots", "show", cwd=mlv_repo))
    assert ticks(mlv_repo / "mlv_plots" / "a.csv.svg") == ["0", "5", "10", "15", "20", "25",
                                                           "30"]


def test_values_beyond_a_float_are_a_note(tmp_path: Path, mlv_repo: Path, mlv: Mlv) -> None:
    victim = origin(tmp_path, mlv_repo, {
        "mlv.yaml": "plots:\n- ok.csv\n- wide.csv\n- big.json\n- bars.csv:\n"
                    "    template: bar_horizontal\n    x: v\n    y: name\n",
        "ok.csv": "x,y\n1,2\n2,3\n",
        "wide.csv": "x,y\n-1e308,1\n1.7e308,2\n",
        "big.json": json.dumps([{"x": 1, "y": 1.7e308}, {"x": 2, "y": 1e308}]),
        "bars.csv": "v,name\n1e308,a\n-1.7e308,b\n"})
    res = mlv("plots", "show", cwd=victim)
    drawn(res)
    for name in ("wide.csv", "big.json", "bars.csv"):
        assert f"note: {name}: values too far apart to draw" in res.stderr
    assert sorted(os.listdir(victim / "mlv_plots")) == ["index.html", "ok.csv.svg"]


def test_tiny_and_equal_values_are_drawn(mlv_repo: Path, mlv: Mlv) -> None:
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- tiny.csv\n- sub.csv\n- same.csv\n",
                         "tiny.csv": "x,y\n1e-320,1e-320\n2e-320,3e-320\n",
                         "sub.csv": "x,y\n5e-323,1\n1e-322,1\n",
                         "same.csv": "x,y\n1e300,7\n1e300,7\n"})
    drawn(mlv("plots", "show", cwd=mlv_repo))
    for name in ("tiny.csv", "sub.csv", "same.csv"):
        svg = (mlv_repo / "mlv_plots" / f"{name}.svg").read_text()
        assert "inf" not in svg and "nan" not in svg


def test_thousands_of_fields_are_refused_at_once(tmp_path: Path, mlv_repo: Path,
                                                 mlv: Mlv) -> None:
    n = 30_000  # each field was checked against every other: minutes
    victim = origin(tmp_path, mlv_repo, {
        "mlv.yaml": "plots:\n- ok.csv\n- wide.csv\n- keys.json\n",
        "ok.csv": "x,y\n1,2\n2,3\n",
        "wide.csv": ",".join(f"c{i}" for i in range(n)) + "\n" + ",".join("1" * n) + "\n",
        "keys.json": json.dumps([{f"k{i}": i} for i in range(n)])})
    start = time.monotonic()
    res = mlv("plots", "show", cwd=victim)
    assert time.monotonic() - start < 5
    drawn(res)
    assert "note: wide.csv: wide.csv: more than 1,000 fields" in res.stderr
    assert "note: keys.json: keys.json: more than 1,000 fields" in res.stderr


def test_many_plots_with_one_file_name_take_linear_time(mlv_repo: Path, mlv: Mlv) -> None:
    # every id below is written `p.svg`, `p-2.svg` …: the numbering restarted at 2 for
    # each, so a clone's mlv.yaml of 20,000 such plots took minutes before any was drawn
    from mlv.api.plots import _Names

    names, start = _Names(), time.monotonic()
    taken = [names.take(f"p{chr(0x4E00 + i)}", ".svg") for i in range(20_000)]
    assert time.monotonic() - start < 2
    assert taken[:3] == ["p.svg", "p-2.svg", "p-3.svg"] and len(set(taken)) == 20_000
    ids = [f"p{chr(0x4E00 + i)}" for i in range(5)]
    plots = "".join(f'- "{i}":\n    y:\n      a.csv: y\n' for i in ids)
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n" + plots, "a.csv": "x,y\n1,2\n2,3\n"})
    drawn(mlv("plots", "show", cwd=mlv_repo))
    assert sorted(os.listdir(mlv_repo / "mlv_plots")) == [
        "index.html", "p-2.svg", "p-3.svg", "p-4.svg", "p-5.svg", "p.svg"]


def test_a_planted_output_folder_symlink_is_not_written_through(tmp_path: Path,
                                                                mlv_repo: Path) -> None:
    outside = tmp_path / "home"
    outside.mkdir()
    make_tree(mlv_repo, {"mlv.yaml": "plots:\n- a.csv\n", "a.csv": "x,y\n1,2\n2,3\n"})
    (mlv_repo / "mlv_plots").symlink_to(".git/hooks")
    (mlv_repo / "out").symlink_to(outside)
    os.makedirs(mlv_repo / "real")
    (mlv_repo / "real" / "inner").symlink_to("../data")
    victim = origin(tmp_path, mlv_repo, {"data": {"keep.txt": "x"}})
    hooks = sorted(os.listdir(victim / ".git" / "hooks"))
    one_error(run_mlv(victim, "plots", "show"), "mlv_plots", "symlink")
    one_error(run_mlv(victim, "plots", "diff", "-o", "out"), "out", "symlink")
    one_error(run_mlv(victim, "plots", "show", "-o", "out/sub"), "out/sub", "symlink")
    one_error(run_mlv(victim, "plots", "show", "-o", "real/inner"), "real/inner", "symlink")
    one_error(run_mlv(victim, "plots", "show", "-o", ".git/plots"), ".git")
    assert sorted(os.listdir(victim / ".git" / "hooks")) == hooks
    assert os.listdir(outside) == [] and os.listdir(victim / "data") == ["keep.txt"]
    drawn(run_mlv(victim, "plots", "show", "-o", str(tmp_path / "mine")))  # the user's own
    assert (tmp_path / "mine" / "index.html").is_file()
