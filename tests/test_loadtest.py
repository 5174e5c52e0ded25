"The loadtest stage end to end: a real `voc-yolo serve`, real Locust users, on the tiny pipeline's deployed model."
import csv, json, subprocess

import yaml

from helpers import run


def service_processes():
    "PIDs of `voc-yolo serve` processes started by ServiceProcess (to check none is left behind)."
    r = subprocess.run(['pgrep', '-f', 'from voc_yolo.cli import main'], capture_output=True, text=True)
    return set(r.stdout.split())


def test_loadtest_stage_in_the_pipeline(tiny_run):
    "The tiny pipeline ran the stage: every request succeeded, both sides counted the same, the outputs are there."
    repo = tiny_run['repo']
    s = json.loads((repo/'metrics/serve.json').read_text())
    assert s['users'] == 4 and s['run_time_s'] == 4 and s['uploads'] is True
    t = s['total']
    assert t['requests'] > 20 and t['failures'] == 0 and t['rps'] > 0 and 0 < t['p50_ms'] <= t['p95_ms'] <= t['p99_ms'], t
    assert s['counts_match'] is True
    eps = s['endpoints']
    assert {'/predict/deploy', '/upload'} <= set(eps), eps.keys()  # predictions and at least one upload (every 1.5 s)
    for name, e in eps.items(): assert e['requests'] == e['service_counted'] and e['failures'] == 0, (name, e)
    assert sum(e['requests'] for e in eps.values()) == t['requests']
    with (repo/'metrics/serve_history.csv').open() as fh: rows = list(csv.DictReader(fh))
    assert rows and max(float(r['rps']) for r in rows) > 0 and max(int(r['users']) for r in rows) == 4  # users stop at the end
    assert s['drift']['images'] > 0 and s['drift']['status'] in ('ok', 'drift', 'not enough data')
    html = (repo/'reports/drift.html').read_text()
    assert 'Drifted Columns' in html and 'K-S p_value' in html and 'brightness' in html  # Evidently's data-drift report
    assert (repo/'reports/loadtest/locust.html').stat().st_size > 10_000
    assert 'Application startup complete' in (repo/'reports/loadtest/service.log').read_text()
    lock = yaml.safe_load((repo/'dvc.lock').read_text())['stages']
    assert 'loadtest' in lock and lock['loadtest']['outs'], lock.keys()  # DVC recorded the stage's run
    status = run('dvc status loadtest', repo).stdout
    assert 'up to date' in status.lower() and 'changed' not in status, status  # its outputs are what the lock says


def test_loadtest_fails_naming_the_metric_and_stops_the_service(tiny_run, tmp_path):
    "A p95 limit no service meets fails the stage with the metric named; outputs are still written; no service is left running."
    repo, before = tiny_run['repo'], service_processes()
    names = dict(out_dir='lt', metrics_path='serve.json', history_csv='h.csv', drift_html='drift.html')
    out = {k: str(tmp_path/v) for k, v in names.items()}
    sets = ' '.join(f'--set {k}={v}' for k, v in {**out, 'max_p95_ms': 0.001, 'run_time': 3, 'users': 2, 'upload_every': 0}.items())
    r = run(f'voc-yolo loadtest {sets}', repo, check=False)
    assert r.returncode != 0
    assert 'p95 latency' in r.stderr and '> max_p95_ms 0.001' in r.stderr, r.stderr[-2000:]
    s = json.loads((tmp_path/'serve.json').read_text())
    assert s['total']['failures'] == 0 and s['uploads'] is False and '/upload' not in s['endpoints']
    assert service_processes() <= before
