"Every library notebook's tests, run against the exported voc_yolo package (see tools/nb_tests_on_package.py)."
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from helpers import ROOT, run

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))
SLOWEST = ('06_quantize.ipynb', '03_train.ipynb', '05_profile.ipynb', '10_serve_app.ipynb', '09_runtime.ipynb', '04_evaluate.ipynb')


@pytest.fixture(scope='module')
def notebook_runs():
    "Every notebook's tests, started together as processes of their own, as many at once as there are cores (slowest first)."
    pool = ThreadPoolExecutor(max(2, os.cpu_count() or 1))
    order = [nb for nb in SLOWEST if nb in NOTEBOOKS] + [nb for nb in NOTEBOOKS if nb not in SLOWEST]
    runs = {nb: pool.submit(run, f'{sys.executable} ../tools/nb_tests_on_package.py {nb}', ROOT/'nbs', check=False) for nb in order}
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_tests_pass_on_the_exported_package(nb, notebook_runs):
    r = notebook_runs[nb].result()  # from nbs/, as nbdev_test runs them
    assert r.returncode == 0, f'{nb} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'


def test_scratch_folders_of_test_cells_are_removed(tmp_path):
    "Test cells mkdtemp() as a notebook user would; run here they (and their subprocesses) write to a private folder, removed at the end."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('#| default_exp core'), nbformat.v4.new_code_cell(
        'import pathlib, subprocess, sys, tempfile\n'
        'd = tempfile.mkdtemp(); pathlib.Path(d, "x").write_text("1"); print(d)\n'
        'child = [sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"]\n'
        'print(subprocess.run(child, capture_output=True, text=True).stdout)')])
    nbformat.write(nb, tmp_path/'scratch.ipynb')
    r = run(f'{sys.executable} {ROOT}/tools/nb_tests_on_package.py scratch.ipynb', tmp_path)
    made = [p for p in r.stdout.split() if p.strip()]
    assert len(made) == 2, r.stdout
    private = {os.path.dirname(p) for p in made}
    assert len(private) == 1 and os.path.basename(private.pop()).startswith('nbtest-'), made
    assert not any(os.path.exists(p) for p in made), f'left behind: {made}'
