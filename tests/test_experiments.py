"""DVC experiments on tiny params, from the tiny pipeline's run as the baseline: a grid through DVC's queue (voc-yolo
sweep) on the training image size, which must reach every stage that reads it; the page that compares the experiments
(voc-yolo compare) in the browser; a failed experiment; metrics and plots diffs."""
import json
from types import SimpleNamespace

import yaml

from helpers import run


def test_sweep_imgsz_from_the_baseline_reaches_every_stage_and_compares(sweep_run, browser):
    from selenium.webdriver.common.by import By
    # conftest.SWEEP, run in the background since the tiny run was done: a 2-point grid up to the stages that read the size;
    # imgsz=64 is the baseline's run, which DVC's run-cache restores (loadtest and report, size-agnostic, would add 90 s)
    r, repo = SimpleNamespace(**sweep_run), sweep_run['repo']
    print(f'\nsweep of 2 experiments (prepare, train, evaluate, profile, quantize; 1 worker): {r.seconds:.0f} s')
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert r.stdout.count(': Success') == 2, r.stdout
    show = json.loads(run('dvc exp show --json', repo).stdout)
    exps = [rev for base in show for e in base.get('experiments') or [] for rev in e['revs']]
    assert len(exps) == 2, [e['name'] for e in exps]
    sizes = {e['data']['metrics']['metrics/eval.json']['data']['imgsz']: e for e in exps}
    assert sorted(sizes) == [64, 96], sizes.keys()
    assert sizes[96]['data']['metrics']['metrics/profile.json']['data']['model']['imgsz'] == 96

    # one training knob, and every stage that reads the size follows it, with no other file edited
    run(f"dvc exp apply {sizes[96]['name']}", repo)
    changed = run('git status --porcelain --untracked-files=no', repo).stdout.split('\n')
    edited = {line[3:] for line in changed if line.strip()} - {'dvc.lock'}
    assert {f for f in edited if not f.startswith(('metrics/', 'models/', 'reports/'))} == {'params/train.yaml'}, edited
    eval_m, prof, quant = (json.loads((repo/f'metrics/{n}.json').read_text()) for n in ('eval', 'profile', 'quantize'))
    assert (eval_m['imgsz'], prof['model']['imgsz'], quant['imgsz']) == (96, 96, 96)
    from voc_yolo.runtime import model_metadata
    assert model_metadata(repo/'models/deploy')['imgsz'] == [96, 96]
    for name in ('evaluate', 'profile', 'quantize'):  # their params say "the training size", not a number
        assert yaml.safe_load((repo/f'params/{name}.yaml').read_text())['imgsz'] is None
    run('git checkout -q -- . && dvc checkout -q', repo)

    run('voc-yolo compare', repo)
    browser.get((repo/'reports/experiments.html').as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')
    names = [r.find_elements(By.TAG_NAME, 'td')[0].text for r in rows]
    assert set(names) >= {e['name'] for e in exps} and len(rows) == 3, names  # the baseline commit and both experiments
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')]
    col = headers.index('train.imgsz')  # the param the sweep changed is a column; the fixed ones are not
    assert 'train.lr0' not in headers and 'train.epochs' not in headers
    browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')[col].click()  # sort ascending
    values = [r.find_elements(By.TAG_NAME, 'td')[col].text for r in browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')]
    assert values == sorted(values, key=float) and values[-1] == '96', values
    imgs = browser.find_elements(By.TAG_NAME, 'img')
    assert len(imgs) == 2 and all(browser.execute_script('return arguments[0].naturalWidth', i) > 0 for i in imgs)
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors

    # the notebook view of the same comparison runs as papermill runs it
    run('papermill nbs/stages/compare.ipynb reports/compare.ipynb -f params/compare.yaml -p latency torch_ms -k voc_yolo', repo)

    # DVC's metrics and plots diffs between the baseline and an experiment
    diff = json.loads(run(f"dvc metrics diff HEAD {sizes[96]['rev']} --json", repo).stdout)
    assert diff['metrics/eval.json']['imgsz'] == {'old': 64, 'new': 96, 'diff': 32}, diff
    run(f"dvc plots diff HEAD {sizes[96]['rev']} -o {repo.parent}/plots", repo)
    assert (repo.parent/'plots/index.html').is_file()

    # a failed experiment is named, with a non-zero exit code, and keeps its row
    try:
        r = run("voc-yolo sweep -S 'params/prepare.yaml:n_train=many' --no-compare prepare", repo, check=False)
    finally:
        run('dvc queue stop', repo, check=False)
    assert r.returncode == 1 and '1 of 1 experiments did not succeed' in r.stderr, r.stderr[-2000:]
    from voc_yolo.experiments import exp_show, experiment_rows
    assert 'failed' in [row['state'] for row in experiment_rows(exp_show(repo))]
