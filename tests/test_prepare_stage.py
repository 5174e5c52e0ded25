"The prepare stage as users run it: papermill by hand, and `dvc repro` in a clean copy of the repository."
import json

import yaml

from helpers import run

TINY = '-p n_train 10 -p n_test 4 -p img_size 64 -p workers 1'


def tiny_params(repo):
    p = repo/'params/prepare.yaml'
    d = yaml.safe_load(p.read_text()); d.update(n_train=10, n_test=4, img_size=64, workers=1)
    p.write_text(yaml.safe_dump(d, sort_keys=False))


def test_papermill_as_a_user_types_it(repo_copy):
    run(f'papermill nbs/stages/prepare.ipynb out.ipynb -f params/prepare.yaml {TINY}', repo_copy)
    stats = json.loads((repo_copy/'metrics/data.json').read_text())
    assert (stats['train']['images'], stats['test']['images']) == (10, 4)
    nb = json.loads((repo_copy/'out.ipynb').read_text())
    pngs = sum('image/png' in o.get('data', {}) for c in nb['cells'] for o in c.get('outputs', []))
    assert pngs >= 4, 'the executed notebook shows the class histogram, boxes per image, box sizes and samples'


def test_papermill_rejects_a_wrongly_typed_parameter(repo_copy):
    r = run('papermill nbs/stages/prepare.ipynb out.ipynb -f params/prepare.yaml -p n_train ten', repo_copy, check=False)
    assert r.returncode != 0 and "key 'n_train' must be int, got str 'ten'" in r.stdout + r.stderr


def test_dvc_repro_then_nothing_to_do_and_scoped_params(repo_copy):
    tiny_params(repo_copy)
    run('dvc repro prepare', repo_copy)
    assert json.loads((repo_copy/'metrics/data.json').read_text())['train']['images'] == 10
    assert (repo_copy/'reports/stages/prepare.ipynb').is_file() and (repo_copy/'data/voc_yolo.yaml').is_file()
    again = run('dvc repro prepare', repo_copy).stdout
    assert "didn't change, skipping" in again and 'Running stage' not in again
    # a stage reading another params file: changing it must not rerun prepare
    (repo_copy/'params/train.yaml').write_text('epochs: 1\n')
    dvc = yaml.safe_load((repo_copy/'dvc.yaml').read_text())
    dvc['stages'] = {'prepare': dvc['stages']['prepare']}  # only prepare and a stub train stage
    dvc['stages']['train'] = dict(cmd='cat params/train.yaml > train.txt', deps=['data/voc_yolo.yaml'],
                                  params=[{'params/train.yaml': ['epochs']}], outs=['train.txt'])
    (repo_copy/'dvc.yaml').write_text(yaml.safe_dump(dvc, sort_keys=False))
    run('dvc repro', repo_copy)
    (repo_copy/'params/train.yaml').write_text('epochs: 2\n')
    out = run('dvc repro', repo_copy).stdout
    assert "Stage 'prepare' didn't change" in out and "Running stage 'train'" in out
    assert run('dvc metrics show --json', repo_copy).returncode == 0
