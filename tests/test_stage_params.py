"""A bad value of every kind (range, choice, a file that must exist), for every stage, as a user gives it: one line on
stderr naming the file, the key, the value and the rule, exit code 2, and nothing a user made touched. The cases come
from the declarations: each rule carries a value that breaks it (voc_yolo.core.Rule.bad), so a new stage or knob is
tested without a line here."""
import dataclasses
import shutil
import typing

import pytest
import yaml

from helpers import ROOT, run
from voc_yolo.core import ParamsError, check_params, load_params, params_path, split_rules, stage_entry, stages


def kind(rule)->str:
    "range, choice or path: the three kinds of rule a stage declares."
    return 'path' if rule.on_disk else 'choice' if 'one of' in rule.text else 'range'


def broken_values(stage)->list:
    "(key, bad value, the rule's words, kind) for every rule of the stage's dataclass that knows a value breaking it."
    cls = stage_entry(stage)[0]
    hints = typing.get_type_hints(cls, include_extras=True)
    return [(f.name, r.bad, r.text, kind(r)) for f in dataclasses.fields(cls) for r in split_rules(hints[f.name])[1] if r.bad is not None]


ALL = [(stage, *case) for stage in stages() for case in broken_values(stage)]
FIRST_OF_KIND = list({(stage, k): (stage, key, bad, rule, k) for stage, key, bad, rule, k in reversed(ALL)}.values())[::-1]
USER_FOLDERS = ('runs', 'models', 'metrics', 'data', 'reports')


def test_every_stage_has_bad_values_of_its_kinds():
    "Each stage declares rules; between them the stages have all three kinds, each run below through the CLI."
    kinds = {stage: {k for s, *_, k in FIRST_OF_KIND if s == stage} for stage in stages()}
    assert all(kinds.values()), f'a stage without a rule: {kinds}'
    assert set().union(*kinds.values()) == {'range', 'choice', 'path'}, kinds
    assert kinds['train'] == kinds['evaluate'] == {'range', 'choice', 'path'}, kinds


OWN_RULES = [case for case in ALL if case[-1] != 'path']  # about the value itself: judged anywhere, before any file is looked at


@pytest.mark.parametrize('stage,key,value,rule,kind', OWN_RULES, ids=[f'{s}-{k}' for s, k, *_ in OWN_RULES])
def test_every_rule_refuses_its_bad_value(stage, key, value, rule, kind):
    "In process, every declared rule of every stage (the path rules are judged on a filled repository below)."
    cls, path = stage_entry(stage)[0], ROOT/params_path(stage)
    values = dataclasses.asdict(load_params(path, cls)) | {key: value}
    with pytest.raises(ParamsError) as e: check_params(cls, values, source=str(path))
    assert str(e.value) == f"{path}: key '{key}' must be {rule}, got {value!r}", str(e.value)


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


@pytest.mark.parametrize('stage,key,value,rule,kind', FIRST_OF_KIND, ids=[f'{s}-{k}' for s, *_, k in FIRST_OF_KIND])
def test_a_bad_value_is_refused_in_one_line_before_any_work(filled_repo, stage, key, value, rule, kind):
    "`voc-yolo <stage>` on a repository with every stage's outputs, one case of each kind a stage declares."
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
    assert line.startswith(f'voc-yolo {stage}: {filled_repo/path}: ') and f"key '{key}' must be {rule}, got {value!r}" in line, line
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
