"""Sweeps through DVC's experiment queue, and the page that compares them (voc-yolo sweep / compare)."""
import json
import time

from conftest import clean_copy, run, tiny_pipeline


def test_a_queued_grid_runs_and_the_comparison_page_shows_both(tmp_path, browser):
    from selenium.webdriver.common.by import By
    repo = clean_copy(tmp_path/'repo'); tiny_pipeline(repo)  # tracked files only: queued runs see nothing untracked
    try:
        t = time.perf_counter()
        r = run("voc-yolo sweep -S 'params/train.yaml:imgsz=64,96' --no-compare evaluate", repo)
        print(f'\nsweep of 2 experiments (prepare, train, evaluate; 1 worker): {time.perf_counter() - t:.0f} s')
    finally:
        run('dvc queue stop', repo, check=False)  # no worker outlives the test (they also stop once the queue is empty)
    assert r.stdout.count(': Success') == 2, r.stdout
    show = json.loads(run('dvc exp show --json', repo).stdout)
    exps = [rev for base in show for e in base.get('experiments') or [] for rev in e['revs']]
    assert len(exps) == 2, [e['name'] for e in exps]
    evals = [e['data']['metrics']['metrics/eval.json']['data'] for e in exps]
    assert sorted(e['imgsz'] for e in evals) == [64, 96] and evals[0] != evals[1]

    run('voc-yolo compare --set latency=torch_ms', repo)
    page = repo/'reports/experiments.html'
    browser.get(page.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')
    names = [r.find_elements(By.TAG_NAME, 'td')[0].text for r in rows]
    assert set(names) >= {e['name'] for e in exps} and len(rows) == 3, names  # the baseline commit and both experiments
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')]
    col = headers.index('train.imgsz')  # the param the sweep changed is a column; the fixed ones are not
    assert 'train.epochs' not in headers
    browser.find_elements(By.CSS_SELECTOR, '#experiments thead th')[col].click()  # sort ascending
    values = [r.find_elements(By.TAG_NAME, 'td')[col].text for r in browser.find_elements(By.CSS_SELECTOR, '#experiments tbody tr')]
    assert values == sorted(values, key=float), values
    imgs = browser.find_elements(By.TAG_NAME, 'img')
    assert len(imgs) == 2 and all(browser.execute_script('return arguments[0].naturalWidth', i) > 0 for i in imgs)
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors
