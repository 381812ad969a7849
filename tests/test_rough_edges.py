"""Regression tests for the rough edges a new user hit (issue 10): one test (or a few) per fix."""
from pathlib import Path

import pytest

from lobsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data")
SAMPLE = ROOT / "data" / "sample.parquet"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared vendor data not present")


def data_error(capsys, argv):
    """Run main(argv) expecting a data error (exit 1); return stderr, checked to be one line."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("lobsim: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv", [
    ["convert", "tardis", "{d}", "-o", "{o}"],
    ["convert", "binance", "{d}", "-o", "{o}"],
    ["convert", "lobster", "{d}", "-o", "{o}"],
    # read_dbn keeps "file not found" for a directory: tests/test_dbn.py::test_missing_file pins it
    pytest.param(["convert", "dbn", "{d}", "-o", "{o}"], marks=pytest.mark.xfail(strict=True, reason="pinned")),
    ["info", "{d}"],
    ["replay", "{d}"],
])
def test_directory_input_is_reported_as_a_directory(capsys, tmp_path, argv):
    d = tmp_path / "adir"
    d.mkdir()
    argv = [a.format(d=d, o=tmp_path / "o.parquet") for a in argv]
    err = data_error(capsys, argv)
    assert "is a directory" in err and "file not found" not in err
