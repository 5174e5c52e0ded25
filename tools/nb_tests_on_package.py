"""Run a library notebook's test cells against the exported package instead of the notebook's own definitions.

`nbdev_test` checks each notebook as written; this checks that what `nbdev_export` wrote to voc_yolo/ passes the same
tests, and lets coverage see voc_yolo/*.py (tests/test_notebook_tests.py runs it for every library notebook).
Usage (from nbs/, like nbdev_test): python ../tools/nb_tests_on_package.py 03_train.ipynb
The test cells make scratch folders with `tempfile.mkdtemp()` and leave them, as a notebook user would; here they land in
a private temporary folder (TMPDIR, inherited by the processes the cells start) that is removed when the run ends.
"""
import importlib
import os
import re
import sys
import tempfile
from contextlib import contextmanager

import matplotlib
import nbformat

matplotlib.use('Agg')
SKIP = re.compile(r'^#\|\s*(export|exporti|exports|default_exp|hide|eval:\s*false)\b', re.M)


@contextmanager
def private_tmpdir():
    "Point tempfile, and the processes started meanwhile, at a new folder; remove it and restore TMPDIR afterwards."
    before = os.environ.get('TMPDIR')
    with tempfile.TemporaryDirectory(prefix='nbtest-', ignore_cleanup_errors=True) as tmp:
        os.environ['TMPDIR'], tempfile.tempdir = tmp, None
        try: yield tmp
        finally:
            if before is None: os.environ.pop('TMPDIR', None)
            else: os.environ['TMPDIR'] = before
            tempfile.tempdir = None


def main(path: str):
    nb = nbformat.read(path, as_version=4)
    mod = next(m.group(1) for c in nb.cells if (m := re.search(r'^#\|\s*default_exp\s+(\S+)', c.source, re.M)))
    ns = dict(vars(importlib.import_module(f'voc_yolo.{mod}')), __name__='__main__')
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != 'code' or SKIP.search(cell.source) or 'nbdev_export()' in cell.source: continue
        exec(compile(cell.source, f'{path} cell {i}', 'exec'), ns)


if __name__ == '__main__':
    with private_tmpdir(): main(sys.argv[1])
