"""benchmarks/faults.py (`make faults`), short: every store and replica fault but the two that wait out S3's retries
(5xx, slow), against a real `voc-yolo serve` over moto's S3 behind the fault proxy, with predictions running."""
import json
import sys

from helpers import ROOT, run
from voc_yolo.serve.testing import untrained_deploy

SHORT = ('listing-denied', 'half-manifest', 'emptied', 'killed-upload', 'two-publishes', 'swap-under-load')


def test_every_fault_keeps_what_is_served_and_answers_every_request(tmp_path):
    deploy = untrained_deploy(tmp_path)
    r = run(f"{sys.executable} benchmarks/faults.py --model {deploy} --hold 1 --cases {','.join(SHORT)} --json {tmp_path}/faults.json",
            ROOT, check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    rows = {x['case']: x for x in json.loads((tmp_path/'faults.json').read_text())}
    assert list(rows) == list(SHORT) and all(x['verdict'] == 'PASS' for x in rows.values()), r.stdout
    for x in rows.values():
        assert x['requests']['unanswered'] == x['requests']['failed'] == 0 and x['requests']['ok'] > 0, x
        assert 'deploy@1' in x['before'] and any(m.startswith('m@') for m in x['after']) and x['peak_rss_mb'] > 0, x
    for case in ('listing-denied', 'emptied'):  # loud: /ready names the store's error, the metric counts it
        assert 'store_error' in rows[case]['ready_during'] and 'store_error' not in rows[case]['ready_after'], rows[case]
        assert rows[case]['polls']['error'] >= 1, rows[case]
    assert 'AccessDenied' in rows['listing-denied']['ready_during']['store_error'].replace(' ', ''), rows['listing-denied']
    assert 'gone or emptied' in rows['emptied']['ready_during']['store_error'], rows['emptied']
    assert 'JSONDecodeError' in rows['half-manifest']['ready_during']['failed']['m'], rows['half-manifest']
    assert len(set(rows['two-publishes']['versions'])) == 2, rows['two-publishes']
    assert rows['swap-under-load']['heavy']['ok'] > 0, rows['swap-under-load']


def test_faults_refuses_an_unknown_case_before_starting_anything(tmp_path):
    r = run(f'{sys.executable} benchmarks/faults.py --cases nope --model {tmp_path}', ROOT, check=False)
    assert r.returncode == 2 and "--cases: unknown ['nope']" in r.stderr, r.stderr
    r = run(f'{sys.executable} benchmarks/faults.py --model {tmp_path}/missing', ROOT, check=False)
    assert r.returncode == 2 and 'missing: not a folder' in r.stderr, r.stderr
