"Shared fixtures: the repository, a throwaway copy of it, and a small synthetic VOCdevkit."
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('WANDB_MODE', 'disabled')  # DESIGN.md §3: no W&B in tests unless the test is about W&B


def run(cmd, cwd, check=True, **kw):
    "Run a shell command the way a user types it; on failure show its output."
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise AssertionError(f"`{cmd}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture
def repo_copy(tmp_path):
    "A fresh git + DVC repository holding the tracked files of this one (what a clean clone has)."
    ls = ['git', 'ls-files', '-co', '--exclude-standard']
    files = subprocess.run(ls, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    dst = tmp_path/'repo'
    for f in files:
        if (ROOT/f).is_file():
            (dst/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/f, dst/f)
    run('git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm init', dst)
    return dst


@pytest.fixture(scope='session')
def small_devkit(tmp_path_factory):
    "A 12 + 6 image synthetic VOCdevkit (read-only: copy it before changing it)."
    from voc_yolo.synthetic import make_synthetic_voc
    return make_synthetic_voc(tmp_path_factory.mktemp('devkit'), n_train=12, n_test=6, img_size=96, seed=3, workers=1)
