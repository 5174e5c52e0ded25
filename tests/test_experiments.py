"""DVC experiments on tiny params: a baseline with `dvc repro`, a grid through DVC's queue (voc-yolo sweep), the
page that compares them (voc-yolo compare) in the browser, a failed experiment, and metrics/plots diffs."""
import json
import time

from helpers import run, tiny_pipeline


def test_repro_a_baseline_then_sweep_a_grid_and_compare_it(repo_copy, browser):
    from selenium.webdriver.common.by import By
    repo = repo_copy; tiny_pipeline(repo)  # tracked files only: queued runs see nothing untracked
    run('dvc repro evaluate', repo)
    m = json.loads((repo/'metrics/eval.json').read_text())
    assert m['images'] == 8 and 0 <= m['metrics/mAP50(B)'] <= 1
    assert json.loads((repo/'metrics/train.json').read_text())['epochs'] == 1
    for f in ('models/best.pt', 'metrics/train_results.csv', 'metrics/eval_pr.csv', 'metrics/eval_confusion.csv',
              'metrics/eval_per_class.csv', 'reports/figures/evaluate/worst_images.png', 'reports/stages/evaluate.ipynb'):
        assert (repo/f).is_file(), f
    assert not list((repo/'data/voc_yolo').rglob('*.cache')), 'Ultralytics caches stay out of the DVC output'
    assert "didn't change" in run('dvc repro evaluate', repo).stdout
    run('git add -A && git -c user.email=t@t -c user.name=t commit -qm baseline', repo)

    try:  # a 2x1 grid; the epochs=1 point is the baseline's run, which DVC's run-cache restores instead of training
        t = time.perf_counter()
        r = run("voc-yolo sweep -S 'params/train.yaml:epochs=1,2' -S 'params/train.yaml:lr0=0.003' --no-compare evaluate", repo)
        print(f'\nsweep of 2 experiments (prepare, train, evaluate; 1 worker): {time.perf_counter() - t:.0f} s')
    finally:
        run('dvc queue stop', repo, check=False)  # no worker outlives the test (sweep stops idle ones too)
    assert r.stdout.count(': Success') == 2, r.stdout
    show = json.loads(run('dvc exp show --json', repo).stdout)
    exps = [rev for base in show for e in base.get('experiments') or [] for rev in e['revs']]
    assert len(exps) == 2, [e['name'] for e in exps]
    trained = [e['data']['metrics']['metrics/train.json']['data'] for e in exps]
    assert sorted(t['epochs'] for t in trained) == [1, 2] and trained[0] != trained[1]

    run('voc-yolo compare --set latency=torch_ms', repo)
    browser.get((repo/'reports/experiments.html').as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')
    names = [r.find_elements(By.TAG_NAME, 'td')[0].text for r in rows]
    assert set(names) >= {e['name'] for e in exps} and len(rows) == 3, names  # the baseline commit and both experiments
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')]
    col = headers.index('train.epochs')  # the param the sweep changed is a column; the fixed ones are not
    assert 'train.lr0' not in headers and 'train.imgsz' not in headers
    browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')[col].click()  # sort ascending
    values = [r.find_elements(By.TAG_NAME, 'td')[col].text for r in browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')]
    assert values == sorted(values, key=float) and values[-1] == '2', values
    imgs = browser.find_elements(By.TAG_NAME, 'img')
    assert len(imgs) == 2 and all(browser.execute_script('return arguments[0].naturalWidth', i) > 0 for i in imgs)
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors

    # the notebook view of the same comparison runs as papermill runs it
    run('papermill nbs/stages/compare.ipynb reports/compare.ipynb -f params/compare.yaml -p latency torch_ms -k voc_yolo', repo)

    # DVC's metrics and plots diffs between the baseline and an experiment
    two = next(e['rev'] for e, t in zip(exps, trained) if t['epochs'] == 2)
    diff = json.loads(run(f'dvc metrics diff HEAD {two} --json', repo).stdout)
    assert diff['metrics/train.json']['epochs'] == {'old': 1, 'new': 2, 'diff': 1}, diff
    run(f'dvc plots diff HEAD {two} -o {repo.parent}/plots', repo)
    assert (repo.parent/'plots/index.html').is_file()

    # a failed experiment is named, with a non-zero exit code, and keeps its row
    try:
        r = run("voc-yolo sweep -S 'params/data.yaml:n_train=many' --no-compare prepare", repo, check=False)
    finally:
        run('dvc queue stop', repo, check=False)
    assert r.returncode == 1 and '1 of 1 experiments did not succeed' in r.stderr, r.stderr[-2000:]
    from voc_yolo.experiments import exp_show, experiment_rows
    assert 'failed' in [row['state'] for row in experiment_rows(exp_show(repo))]
