"The repository's own contracts: pins, environment.yml, README freshness, params and dvc.yaml agreeing."
import configparser
import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, run
from voc_yolo.core import load_params
from voc_yolo.prepare import PrepareParams


def settings():
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini'); return c['DEFAULT']


def test_settings_pins_nbdev2_and_keeps_tags():
    s = settings()
    dev = s['dev_requirements'].split()
    assert 'nbdev>=2.4,<2.5' in dev and 'fastcore>=1.5,<2' in dev and 'execnb<0.2' in dev
    assert s['allowed_cell_metadata_keys'] == 'tags'
    assert any(r.startswith('torch>=2.2') for r in s['pipeline_requirements'].split())
    light = s['requirements'].split() + s['serve_requirements'].split()  # pip install voc_yolo[serve]: no torch, no ultralytics
    assert not [r for r in light if r.startswith(('torch', 'ultralytics', 'nncf'))], light


def test_environment_yml_mirrors_settings():
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    py = next(d for d in env['dependencies'] if isinstance(d, str) and d.startswith('python='))
    major_minor = tuple(int(v) for v in py.split('=')[1].split('.')[:2])
    assert major_minor >= tuple(int(v) for v in settings()['min_python'].split('.'))
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict))
    assert pip == ['-c constraints.txt', '-e .[dev]'], 'environment.yml must install the package with the dev extras, through the lock'
    assert env['name'] == settings()['lib_name']


def locked()->dict:
    "constraints.txt as {normalised name: version}, read the way the report reads it."
    from voc_yolo.report import locked_versions
    return locked_versions(ROOT/'constraints.txt')


def test_every_requirement_of_settings_ini_is_locked():
    "A requirement added to settings.ini without `make lock` fails here, naming it; the lock pins exact versions only."
    import re
    from packaging.requirements import Requirement
    lock, s = locked(), settings()
    lines = [ln.split('#')[0].strip() for ln in (ROOT/'constraints.txt').read_text().splitlines()]
    assert all('==' in ln for ln in lines if ln), [ln for ln in lines if ln and '==' not in ln]
    keys = ('requirements', 'pipeline_requirements', 'serve_requirements', 'dev_requirements')
    names = {Requirement(r).name for k in keys for r in s[k].split()}
    missing = sorted(n for n in names if re.sub(r'[-_.]+', '-', n).lower() not in lock)
    assert not missing, f'in settings.ini but not in constraints.txt: {missing}; run `make lock`'


def test_the_lock_is_made_from_the_project_alone():
    "No machine-wide pip constraint file or index shaped the lock: its command names only the project's own files."
    header = [ln for ln in (ROOT/'constraints.txt').read_text().splitlines()[:8] if 'pip-compile' in ln and '--' in ln]
    assert header and '--constraint' not in header[0] and '--index-url' not in header[0], header
    make = (ROOT/'Makefile').read_text()
    assert 'PIP_CONFIG_FILE=/dev/null' in make.split('\nlock:')[1].split('\n\n')[0], 'make lock must ignore the pip configuration'


def test_the_environment_matches_the_lock():
    "The tests run in what `make install` installs: every locked package that is installed has its locked version."
    from importlib.metadata import distributions
    import re
    lock = locked()
    installed = {re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in distributions()}
    tools = ('pip', 'setuptools', 'wheel')  # the installer's own, upgraded by make install before the lock applies
    off = {n: (installed[n], v) for n, v in lock.items() if n in installed and installed[n] != v and n not in tools}
    assert not off, f'installed != locked: {off}'


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, 'tools/make_readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (ROOT/'README.md').read_text().startswith('<!-- generated from nbs/index.ipynb')


def test_params_file_matches_stage_and_dvc():
    p = load_params(ROOT/'params/data.yaml', PrepareParams)
    fields = {f.name for f in dataclasses.fields(PrepareParams)}
    assert set(yaml.safe_load((ROOT/'params/data.yaml').read_text())) == fields
    dvc = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages']['prepare']
    assert set(dvc['params'][0]['params/data.yaml']) == fields
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in dvc['outs']}
    assert {p.out_dir, p.dataset_yaml}.issubset(outs)
    assert {next(iter(m)) for m in dvc['metrics']} == {p.metrics_path, p.quality_path}


def test_nbdev_clean_keeps_papermill_parameters_tag(tmp_path):
    nb = tmp_path/'stage.ipynb'; shutil.copy(ROOT/'nbs/stages/prepare.ipynb', nb)
    run(f'nbdev_clean --fname {nb}', ROOT)
    cells = json.loads(nb.read_text())['cells']
    assert [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])], 'parameters tag was stripped'


def test_no_notebook_outputs_committed():
    for nb in (ROOT/'nbs/stages').glob('*.ipynb'):
        assert all(not c.get('outputs') for c in json.loads(nb.read_text())['cells']), f'{nb} has outputs'


STAGE_PARAMS = {'prepare': ('data', 'voc_yolo.prepare', 'PrepareParams'), 'train': ('train', 'voc_yolo.train', 'TrainParams'),
                'evaluate': ('evaluate', 'voc_yolo.evaluate', 'EvalParams'), 'profile': ('profile', 'voc_yolo.profile', 'ProfileParams'),
                'quantize': ('quantize', 'voc_yolo.quantize', 'QuantizeParams'),
                'loadtest': ('loadtest', 'voc_yolo.loadtest', 'LoadtestParams'), 'report': ('report', 'voc_yolo.report', 'ReportParams')}


def notebook_defaults(stage):
    "The parameters cell of a stage notebook as {name: default}."
    import ast
    cells = json.loads((ROOT/f'nbs/stages/{stage}.ipynb').read_text())['cells']
    cell = next(c for c in cells if 'parameters' in c['metadata'].get('tags', []))
    tree = ast.parse(''.join(cell['source']))
    return {n.target.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.AnnAssign)}


@pytest.mark.parametrize('stage', list(STAGE_PARAMS))
def test_every_stage_agrees_on_its_params(stage):
    "dataclass fields = params file keys = dvc.yaml params = notebook parameters, and notebook defaults = params values."
    import importlib
    name, module, cls = STAGE_PARAMS[stage]
    cls = getattr(importlib.import_module(module), cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values = yaml.safe_load((ROOT/f'params/{name}.yaml').read_text())
    assert set(values) == fields
    load_params(ROOT/f'params/{name}.yaml', cls)  # types check
    dvc = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages'][stage]
    assert set(dvc['params'][0][f'params/{name}.yaml']) == fields
    assert f'-f params/{name}.yaml' in dvc['cmd'] and f'nbs/stages/{stage}.ipynb' in dvc['cmd']
    defaults = notebook_defaults(stage)
    assert defaults.pop('params_file') == f'params/{name}.yaml'
    assert defaults == values, 'the notebook defaults (used in JupyterLab) differ from the params file (used by DVC)'


def test_the_compare_notebook_agrees_with_its_params():
    "voc-yolo compare is not a DVC stage, but its notebook, params file and dataclass agree like a stage's."
    from voc_yolo.experiments import CompareParams
    values = yaml.safe_load((ROOT/'params/compare.yaml').read_text())
    assert set(values) == {f.name for f in dataclasses.fields(CompareParams)}
    load_params(ROOT/'params/compare.yaml', CompareParams)
    defaults = notebook_defaults('compare')
    assert defaults.pop('params_file') == 'params/compare.yaml' and defaults == values


def test_dvc_runs_the_stage_table_in_order():
    "dvc.yaml's stages are voc_yolo.core.PIPELINE, in its order, each with the params file of the stage table."
    from voc_yolo.core import PIPELINE, STAGES
    stages = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages']
    assert tuple(stages) == PIPELINE
    for name, spec in stages.items():
        assert f"-f {STAGES[name][3]}" in spec['cmd'], (name, spec['cmd'])


def _module_file(mod):
    p = ROOT/(mod.replace('.', '/') + '.py')
    return p if p.is_file() else ROOT/mod.replace('.', '/')/'__init__.py'


def _code_of(mods):
    "The library files `mods` import, transitively (relative imports resolved), as repo-relative paths."
    import ast
    seen, todo = set(), list(mods)
    while todo:
        mod = todo.pop()
        f = _module_file(mod)
        if mod in seen or not f.is_file(): continue
        seen.add(mod)
        pkg = mod.split('.') if f.name == '__init__.py' else mod.split('.')[:-1]
        for n in ast.walk(ast.parse(f.read_text())):
            if not isinstance(n, ast.ImportFrom): continue
            target = '.'.join(pkg[:len(pkg) - n.level + 1] + ([n.module] if n.module else [])) if n.level else n.module or ''
            if target.startswith('voc_yolo'): todo += [target, *(f'{target}.{a.name}' for a in n.names)]
    return {_module_file(m).relative_to(ROOT).as_posix() for m in seen if m != 'voc_yolo'}


SERVICE = ('voc_yolo.serve.app', 'voc_yolo.locustfile')  # what the loadtest stage starts (`voc-yolo serve`, Locust) besides its module


@pytest.mark.parametrize('stage', yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages'])
def test_stage_deps_cover_the_code_it_runs(stage):
    "A change to any library file a stage runs (through its notebook's imports) reruns it: no stale dvc.lock."
    import re
    spec = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages'][stage]
    nb = json.loads((ROOT/f'nbs/stages/{stage}.ipynb').read_text())
    mods = set(re.findall(r'from (voc_yolo[\w.]*) import', ''.join(''.join(c['source']) for c in nb['cells'])))
    code = _code_of(mods | (set(SERVICE) if stage == 'loadtest' else set())) | ({'voc_yolo/cli.py'} if stage == 'loadtest' else set())
    deps = [d.rstrip('/') for d in spec['deps']]
    missing = sorted(f for f in code if not any(f == d or f.startswith(d + '/') for d in deps))
    assert not missing, f'{stage}: dvc.yaml deps lack {missing}'
    assert 'voc_yolo/core.py' in code


def test_the_serving_page_lists_every_setting_of_the_service():
    "nbs/serving.ipynb's settings table has one row per `Settings` field, with its flag and variable."
    from voc_yolo.serve.settings import Settings
    page = (ROOT/'nbs/serving.ipynb').read_text()
    missing = [n for n in Settings.model_fields if f"`--{n.replace('_', '-')}` | `VOC_YOLO_{n.upper()}`" not in page]
    assert not missing, f'nbs/serving.ipynb: no row for {missing}'
