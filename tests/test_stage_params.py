"""A bad value of every kind (range, choice, a file that must exist), for every stage, as a user gives it: one line on
stderr naming the file, the key, the value and the rule, exit code 2, and nothing a user made touched."""
import shutil

import pytest
import yaml

from helpers import run
from voc_yolo.core import STAGES, params_path

BAD = {  # stage -> kind -> (key, bad value, the rule's words)
    'prepare': {'range': ('n_train', 0, 'at least 1'), 'choice': ('source', 'VOC2012', 'one of synthetic | voc or an existing folder')},
    'train': {'range': ('epochs', -3, 'at least 1'), 'choice': ('optimizer', 'adamw', 'one of SGD | Adam | Adamax | AdamW'),
              'path': ('dataset_yaml', 'data/none.yaml', 'an existing file'), 'size': ('imgsz', 100, 'a positive multiple of 32')},
    'evaluate': {'range': ('conf', 2.5, 'between 0 and 1'), 'choice': ('split', 'valid', 'one of train | val | test'),
                 'path': ('weights', 'models/none.pt', 'an existing file')},
    'profile': {'range': ('repeats', 0, 'at least 1'), 'choice': ('backends', ['tensorrt'], 'each one of torch | onnxruntime'),
                'path': ('weights', 'models/none.pt', 'an existing file')},
    'quantize': {'range': ('accuracy_budget', -0.1, 'between 0 and 1'), 'choice': ('ort_format', 'qdq', 'one of QDQ | QOperator'),
                 'path': ('weights', 'models/none.pt', 'an existing file')},
    'loadtest': {'range': ('users', 0, 'at least 1'), 'path': ('deploy_dir', 'models/none', 'an existing folder')},
    'report': {'path': ('stages_dir', 'reports/none', 'an existing folder')},
    'compare': {'range': ('num', 0, 'at least 1'), 'choice': ('latency', 'ms', 'one of deployed_ms | torch_ms')},
}
CASES = [(stage, kind) for stage, kinds in BAD.items() for kind in kinds]
USER_FOLDERS = ('runs', 'models', 'metrics', 'data', 'reports')


def test_every_stage_has_its_bad_values():
    "Each stage of the table, a range case where it has a bounded number and a path case where it reads an earlier stage's file."
    assert set(BAD) == set(STAGES)


def snapshot(repo):
    "Every file under the folders a user's runs fill, with its size and modification time."
    return {str(f.relative_to(repo)): (f.stat().st_size, f.stat().st_mtime_ns)
            for d in USER_FOLDERS for f in sorted((repo/d).rglob('*')) if f.is_file() or f.is_symlink()}


@pytest.fixture(scope='module')
def filled_repo(tiny_run, tmp_path_factory):
    "A copy of the tiny pipeline's repository: every stage's outputs in place, as a user has them after `make pipeline`."
    repo = tmp_path_factory.mktemp('bad')/'repo'
    shutil.copytree(tiny_run['repo'], repo, symlinks=True)
    return repo


@pytest.mark.parametrize('stage,kind', CASES)
def test_a_bad_value_is_refused_in_one_line_before_any_work(filled_repo, stage, kind):
    key, value, rule = BAD[stage][kind]
    path = params_path(stage)
    f = filled_repo/path
    good = f.read_text()
    before = snapshot(filled_repo)
    try:
        f.write_text(yaml.safe_dump(yaml.safe_load(good) | {key: value}, sort_keys=False))
        r = run(f'voc-yolo {stage}', filled_repo, check=False)
    finally: f.write_text(good)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    line = r.stderr.strip()
    assert '\n' not in line, f'more than one line: {r.stderr[-3000:]}'
    assert line.startswith(f'voc-yolo {stage}: {filled_repo/path}: ') and f"key '{key}' must be {rule}" in line, line
    assert repr(value) in line, line
    assert snapshot(filled_repo) == before, 'a refused start changed files under ' + ', '.join(USER_FOLDERS)


def test_a_training_the_engine_refuses_keeps_the_last_run(filled_repo):
    """A value only Ultralytics judges (here a flip probability above 1 in `extra`) fails after the run folder was set
    aside: the earlier run comes back whole, and the next start with good params is not blocked."""
    run_dir = filled_repo/'runs/train'
    before = {str(f.relative_to(run_dir)): f.read_bytes() for f in sorted(run_dir.rglob('*')) if f.is_file()}
    assert 'weights/last.pt' in before and 'args.yaml' in before
    r = run("voc-yolo train --set 'extra={fliplr: 2.0}'", filled_repo, check=False)
    assert r.returncode != 0 and 'fliplr' in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    after = {str(f.relative_to(run_dir)): f.read_bytes() for f in sorted(run_dir.rglob('*')) if f.is_file()}
    assert after == before, 'the failed start changed the earlier run'
    assert not (filled_repo/'runs/train.previous').exists()
