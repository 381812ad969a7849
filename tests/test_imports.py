"""Import costs and failure modes: `import lobsim` stays light, a missing C core says how to fix it."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"


def run_python(code, cwd, pythonpath):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"})


def test_import_lobsim_and_book_do_not_load_pyarrow(tmp_path):
    code = f"""
import sys
import lobsim, lobsim.book
from lobsim.data import synthetic  # the generator needs no Parquet either
assert not [m for m in sys.modules if m.split('.')[0] == 'pyarrow'], 'pyarrow loaded by import'
assert lobsim.Instrument('X', '0.01').price_to_ticks('1.23') == 123
from lobsim.data import read_parquet, write_parquet  # first Parquet use loads it
ev = read_parquet({str(SAMPLE)!r})
assert len(ev) == 200_000 and 'pyarrow' in sys.modules
write_parquet(ev, {str(tmp_path / 'copy.parquet')!r})
assert read_parquet({str(tmp_path / 'copy.parquet')!r}).array.tobytes() == ev.array.tobytes()
from lobsim.instrument import parse_decimal_strings
assert parse_decimal_strings(['1.5'])[0].tolist() == [15]
print('ok')
"""
    p = run_python(code, tmp_path, ROOT)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr


def _tree_without_core(tmp_path):
    """A copy of the lobsim package as a source checkout has it before any build: no compiled module."""
    dst = tmp_path / "lobsim"
    shutil.copytree(ROOT / "lobsim", dst, ignore=shutil.ignore_patterns("_lobsim_c*", "__pycache__"))
    return dst


# An editable install's import hook would find lobsim's submodules in the real tree;
# drop it so the copy behaves like a source checkout beside a non-editable install.
NO_EDITABLE_HOOK = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "


def test_missing_c_core_is_one_import_error_naming_the_fix(tmp_path):
    pkg = _tree_without_core(tmp_path)
    p = run_python(NO_EDITABLE_HOOK + "import lobsim; print(lobsim.__file__); import lobsim.book",
                   tmp_path, tmp_path)
    assert p.stdout.strip() == str(pkg / "__init__.py")  # the copy, not the installed package
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last == (f"ImportError: lobsim's C core is not built in {pkg}: run `pip install -e .` from the "
                    f"repository root (or install lobsim and run Python outside the source tree)")
    assert "During handling" not in p.stderr  # one error, not a chain


def test_unloadable_c_core_says_why(tmp_path):
    pkg = _tree_without_core(tmp_path)
    (pkg / "_lobsim_c.abi3.so").write_bytes(b"not an ELF file")
    p = run_python(NO_EDITABLE_HOOK + "import lobsim._core", tmp_path, tmp_path)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1 and last.startswith(f"ImportError: lobsim's C core in {pkg} cannot be loaded (")
    assert "pip install -e ." in last
