"Every library notebook's tests, run against the exported voc_yolo package (see tools/nb_tests_on_package.py)."
import sys

import pytest

from helpers import ROOT, run

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))


@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_tests_pass_on_the_exported_package(nb):
    run(f'{sys.executable} ../tools/nb_tests_on_package.py {nb}', ROOT/'nbs')  # from nbs/, as nbdev_test runs them
