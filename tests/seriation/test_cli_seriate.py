"""`clss seriate` and the file helpers behind it, on real files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from click.testing import CliRunner

from clss.seriation import load_anchors, load_similarity, save_seriation, seriate
from clss.seriation.generators import EXAMPLES, example, permute_matrix, toeplitz_robinson
from clss.seriation.io import MatrixFileError
from clss_cli.main import main


@pytest.fixture
def shuffled():
    s = toeplitz_robinson(12, "exp", rate=0.3)
    perm = np.random.default_rng(0).permutation(12)
    return permute_matrix(s, perm), perm


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def test_example_end_to_end(tmp_path):
    out = run("seriate", "--example", "curve", "-o", tmp_path / "order.csv", "-o",
              tmp_path / "result.json", "--plot", tmp_path / "plot.png")
    assert out.exit_code == 0, out.output
    assert "Kendall tau" in out.output
    tau = float(out.output.split("|Kendall tau| vs truth")[1].split()[1])
    assert tau > 0.95
    rows = (tmp_path / "order.csv").read_text().splitlines()
    assert rows[0] == "position,item,label,coordinate" and len(rows) == 301
    res = json.loads((tmp_path / "result.json").read_text())
    assert sorted(res["order"]) == list(range(300)) and res["converged"] is True
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fmt", ["npy", "npz", "sparse_npz", "csv", "csv_header", "tsv", "mtx"])
def test_file_formats_give_the_same_order(tmp_path, shuffled, fmt):
    s, perm = shuffled
    path = tmp_path / f"m.{fmt.split('_')[-1]}"
    if fmt == "npy":
        np.save(path, s)
    elif fmt == "npz":
        np.savez(path, sim=s)
    elif fmt == "sparse_npz":
        sp.save_npz(path, sp.csr_matrix(s))
    elif fmt == "csv":
        np.savetxt(path, s, delimiter=",")
    elif fmt == "csv_header":
        path = tmp_path / "m.csv"
        np.savetxt(path, s, delimiter=",", header=",".join(f"c{i}" for i in range(12)), comments="")
    elif fmt == "tsv":
        np.savetxt(path, s, delimiter="\t")
    else:
        scipy.io.mmwrite(path, sp.coo_matrix(s))
    loaded = load_similarity(path)
    assert np.allclose(loaded.toarray() if sp.issparse(loaded) else loaded, s)
    out = run("seriate", path, "-o", tmp_path / "o.json")
    assert out.exit_code == 0, out.output
    order = json.loads((tmp_path / "o.json").read_text())["order"]
    assert order == seriate(s).order.tolist()
    assert perm[order].tolist() in (list(range(12)), list(range(11, -1, -1)))


def test_anchors_file_switches_to_anchored(tmp_path, shuffled):
    s, perm = shuffled
    np.save(tmp_path / "s.npy", s)
    inv = np.argsort(perm)
    (tmp_path / "a.csv").write_text(f"index,value\n{inv[0]},0\n{inv[11]},11\n")
    (tmp_path / "a.json").write_text(json.dumps({"anchors": [int(inv[0]), int(inv[11])],
                                                 "values": [0.0, 11.0]}))
    for anchors in ("a.csv", "a.json"):
        out = run("seriate", tmp_path / "s.npy", "--anchors", tmp_path / anchors, "-o",
                  tmp_path / "o.json")
        assert out.exit_code == 0, out.output
        res = json.loads((tmp_path / "o.json").read_text())
        assert res["method"] == "anchored"
        assert perm[res["order"]].tolist() == list(range(12))


def test_distance_kind(tmp_path):
    x = np.sort(np.random.default_rng(1).uniform(size=15))
    np.save(tmp_path / "d.npy", np.abs(np.subtract.outer(x, x)))
    out = run("seriate", tmp_path / "d.npy", "--kind", "distance", "-o", tmp_path / "o.csv")
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    (np.ones((3, 4)), "square"),
    (np.array([[0, np.nan], [np.nan, 0]]), "NaN"),
    (np.array([[0, 1.0], [3.0, 0]]), "not symmetric"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    if content is not None:
        np.save(path, content)
    out = run("seriate", path)
    assert out.exit_code == 2
    assert message in out.output and "Traceback" not in out.output


def test_corrupt_and_unsupported_files(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not a numpy file")
    (tmp_path / "x.bin").write_bytes(b"\x00")
    (tmp_path / "x.csv").write_text("a,b\nc,d\n")
    for name, message in [("x.npy", "could not read"), ("x.bin", "unsupported"),
                          ("x.csv", "could not read")]:
        out = run("seriate", tmp_path / name)
        assert out.exit_code == 2 and message in out.output, out.output


def test_usage_errors():
    assert run("seriate").exit_code == 2
    assert run("seriate", "x.npy", "--example", "curve").exit_code == 2


def test_io_helpers(tmp_path):
    s = toeplitz_robinson(5, "exp")
    res = seriate(s)
    assert save_seriation(res, tmp_path / "sub" / "r.csv").exists()
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        save_seriation(res, tmp_path / "r.txt")
    np.savez(tmp_path / "two.npz", a=s, b=s)
    with pytest.raises(MatrixFileError, match="holds 2 arrays"):
        load_similarity(tmp_path / "two.npz")
    assert load_similarity(tmp_path / "two.npz", key="b").shape == (5, 5)
    (tmp_path / "bad.csv").write_text("1\n2\n")
    with pytest.raises(MatrixFileError, match="two columns"):
        load_anchors(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError):
        load_anchors(tmp_path / "missing.csv")


def test_examples_are_deterministic():
    for name in EXAMPLES:
        a, ta = example(name)
        b, tb = example(name)
        assert np.array_equal(a, b) and np.array_equal(ta, tb)
    with pytest.raises(ValueError, match="unknown example"):
        example("nope")


def test_console_script_and_help():
    out = subprocess.run([sys.executable, "-m", "clss_cli.main", "seriate", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--anchors" in out.stdout and "--plot" in out.stdout


def test_explicit_spectral_method_with_anchors_only_orients(tmp_path, shuffled):
    s, perm = shuffled
    np.save(tmp_path / "s.npy", s)
    inv = np.argsort(perm)
    (tmp_path / "a.csv").write_text(f"{inv[0]},11\n{inv[11]},0\n")
    out = run("seriate", tmp_path / "s.npy", "--anchors", tmp_path / "a.csv", "--method", "spectral",
              "-o", tmp_path / "o.json")
    assert out.exit_code == 0, out.output
    res = json.loads((tmp_path / "o.json").read_text())
    assert res["method"] == "spectral"
    assert perm[res["order"]].tolist() == list(range(11, -1, -1))  # oriented by the values


@pytest.mark.parametrize("kind", ["similarity", "distance"])
def test_plot_colour_bar_names_what_the_matrix_holds(tmp_path, monkeypatch, kind):
    import matplotlib

    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # labels as <text>, not paths
    np.save(tmp_path / "m.npy", toeplitz_robinson(6, "exp"))
    out = run("seriate", tmp_path / "m.npy", "--kind", kind, "--plot", tmp_path / "p.svg")
    assert out.exit_code == 0, out.output
    svg = (tmp_path / "p.svg").read_text()
    other = "similarity" if kind == "distance" else "distance"
    assert f">{kind}<" in svg and f">{other}<" not in svg


def test_seriation_warnings_are_one_line_each(tmp_path):
    np.save(tmp_path / "blocks.npy", np.kron(np.eye(2), toeplitz_robinson(3, "exp")))
    out = run("seriate", tmp_path / "blocks.npy")
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "warning: the similarity graph has 2 connected components" in text
    assert "SeriationWarning" not in out.output and ".py:" not in out.output
