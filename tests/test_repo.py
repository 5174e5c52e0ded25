"The repository's own contracts: pins, environment.yml, README freshness, params and dvc.yaml agreeing."
import configparser
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, run
from voc_yolo.core import load_params, params_path, pipeline, stage_entry, stages
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
    off = {n: (installed[n], v) for n, v in lock.items() if n in installed and not pinned_by(v, installed[n]) and n not in tools}
    assert not off, f'installed != locked: {off}'


def pinned_by(locked:str, installed:str)->bool:
    "Whether `installed` satisfies the lock's `==locked`, as pip judges it: a local label (torch 2.14.1+cpu) still matches."
    from packaging.specifiers import SpecifierSet
    return SpecifierSet(f'=={locked}').contains(installed, prereleases=True)


def test_a_local_build_label_matches_its_locked_version():
    "The CPU index's torch (2.14.1+cpu, the `full` job's) is the locked 2.14.1; another release is not."
    assert pinned_by('2.14.1', '2.14.1+cpu') and pinned_by('2.14.1', '2.14.1')
    assert not pinned_by('2.14.1', '2.14.2') and not pinned_by('2.14.1', '2.14.1.post1')


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, 'tools/make_readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (ROOT/'README.md').read_text().startswith('<!-- generated from nbs/index.ipynb')


def test_prepare_declares_its_outputs_to_dvc():
    "The paths the prepare stage writes are its DVC outputs and metrics (read from its params file, not copied)."
    p = load_params(ROOT/params_path('prepare'), PrepareParams)
    dvc = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages']['prepare']
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


def parameters_cell(stage):
    "The parameters cell of a stage notebook as {name: default}."
    import ast
    cells = json.loads((ROOT/f'nbs/stages/{stage}.ipynb').read_text())['cells']
    cell = next(c for c in cells if 'parameters' in c['metadata'].get('tags', []))
    tree = ast.parse(''.join(cell['source']))
    return {n.target.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.AnnAssign)}


@pytest.mark.parametrize('stage', stages())
def test_each_stage_is_declared_once(stage):
    """A parameter is written in two places, its dataclass and params/<stage>.yaml: dvc.yaml tracks that file whole and
    hands the notebook its name, and the notebook's parameters cell holds nothing else."""
    (cls, _), path = stage_entry(stage), params_path(stage)
    values = yaml.safe_load((ROOT/path).read_text())
    assert set(values) == {f.name for f in dataclasses.fields(cls)}, 'the params file has every key of the dataclass, no other'
    load_params(ROOT/path, cls)  # types and rules
    assert parameters_cell(stage) == {'params_file': path}
    if stage in pipeline():
        spec = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages'][stage]
        assert spec['params'] == [{path: None}], f'{stage}: dvc.yaml should track {path} whole'
        assert spec['cmd'].startswith(f'papermill nbs/stages/{stage}.ipynb reports/stages/{stage}.ipynb -p params_file {path} ')


def test_a_stage_is_four_files():
    """dvc.yaml names the stages; each is its library notebook (exporting voc_yolo/<stage>.py, with the function marked
    @stage_function), its params file and its stage notebook. Nothing else lists the stages."""
    for stage in pipeline():
        cls, fn = stage_entry(stage)
        assert fn.__module__ == f'voc_yolo.{stage}' and fn.stage_params is cls
        assert (ROOT/params_path(stage)).is_file() and (ROOT/f'nbs/stages/{stage}.ipynb').is_file()
        assert any(f'"#| default_exp {stage}' in f.read_text() for f in (ROOT/'nbs').glob('*.ipynb')), f'nothing exports {stage}'


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


def _page(name):
    "A docs notebook's markdown, all cells."
    return '\n'.join(''.join(c['source']) for c in json.loads((ROOT/f'nbs/{name}').read_text())['cells'])


def test_the_design_page_is_true_to_the_code():
    "What a test can check of nbs/design.ipynb: the notebooks it names, the line limit, the arrows between the service's modules."
    import ast
    import re
    page = _page('design.ipynb')
    named = set(re.findall(r'\b(\d\d[a-z]?_\w+?)(?:\.ipynb|\b)', page))
    assert named and all(list((ROOT/'nbs').glob(f'{n}.ipynb')) for n in named), f'the design page names missing notebooks: {named}'
    long = [f'{f.relative_to(ROOT)}:{i}' for f in sorted((ROOT/'voc_yolo').rglob('*.py')) if f.name != '_modidx.py'
            for i, line in enumerate(f.read_text().splitlines(), 1) if i > 1 and len(line) > 140]
    assert not long, f'lines over 140 characters (only nbdev\'s module docstring may be): {long}'
    arrows = re.findall(r'^\s+([\w &]+?) --> ([\w &]+?)(?:\[|$)', page, re.M)
    below = {(a.strip(), b.strip()) for lhs, rhs in arrows for a in lhs.split('&') for b in rhs.split('&')}
    assert ('uploads', 'shared') in below, 'the diagram was not parsed'
    for f in sorted((ROOT/'voc_yolo/serve').glob('*.py')):
        imported = {n.module.split('.')[-1] for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.ImportFrom) and n.module}
        wrong = sorted(upper for lower, upper in below if lower == f.stem and upper in imported)
        assert not wrong, f'the design page draws {f.stem} below {wrong}, but {f.stem} imports them'


def test_make_help_lists_every_documented_target():
    "Every target with a `## ` description appears in `make help` (a digit in a name, k8s-lint, hid one once)."
    import re
    targets = re.findall(r'^([^\s:#=]+):[^=].*## ', (ROOT/'Makefile').read_text(), re.M)
    shown = subprocess.run(['make', '--no-print-directory', 'help'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert targets and {t for t in targets} == set(re.findall(r'^  make (\S+)', shown, re.M))


def test_k8s_lint_says_it_skipped_where_neither_kubectl_nor_kustomize_is_installed(tmp_path):
    "A user's machine without either: `make lint` goes on, saying what it left out, instead of failing on a tool it never installed."
    tools = ['.cache/checkov/bin/checkov', '.cache/kv/bin/kubernetes-validate']  # taken as built: not remade for this check
    r = subprocess.run([shutil.which('make'), '--no-print-directory', *(a for t in tools for a in ('-o', t)), 'k8s-lint'], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, 'PATH': str(tmp_path)})  # an empty PATH: no kubectl
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.startswith('k8s-lint: skipped: neither kubectl nor kustomize is installed'), r.stderr
    assert 'valid against' not in r.stdout, r.stdout


def test_every_command_the_readme_names_exists():
    """The README's make targets, `voc-yolo` commands and flags, repository paths and settings variables all exist:
    a renamed target, flag or file fails here, not in a reader's terminal."""
    import re
    readme = (ROOT/'README.md').read_text()
    makefile = (ROOT/'Makefile').read_text()
    for t in set(re.findall(r'\bmake ([a-z][\w-]*)', readme)):
        assert re.search(rf'^{re.escape(t)}:', makefile, re.M), f'README names `make {t}`, which the Makefile lacks'
    from voc_yolo.cli import parser
    sub = next(a for a in parser()._actions if a.dest == 'command').choices
    for cmd, rest in re.findall(r'\bvoc-yolo ([a-z]+)((?: [^`\n#]*)?)', readme):
        assert cmd in sub, f'README names `voc-yolo {cmd}`'
        flags = {o for a in sub[cmd]._actions for o in a.option_strings}
        for flag in re.findall(r'(?<!\S)(--[a-z][\w-]*)', rest):
            assert flag in flags, f'README names `voc-yolo {cmd} {flag}`, which it does not take'
    stages = yaml.safe_load((ROOT/'dvc.yaml').read_text())['stages'].values()
    outputs = {next(iter(x)) if isinstance(x, dict) else x for s in stages for x in s.get('outs', []) + s.get('metrics', [])}
    for path in set(re.findall(r'`((?:nbs|params|deploy|tools|models|metrics|reports|data)/[\w./-]+?)/?`', readme)):
        tracked = (ROOT/path).exists() or any(path == o or path.startswith(o.rstrip('/') + '/') or o.startswith(path) for o in outputs)
        assert tracked or '*' in path, f'README names {path}: neither in the repository nor a stage output'
    from voc_yolo.serve.settings import Settings
    for var in set(re.findall(r'VOC_YOLO_([A-Z_]+)', readme)) - {''}:
        assert var.lower() in Settings.model_fields, f'README names VOC_YOLO_{var}, which is no setting'
