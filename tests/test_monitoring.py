"Monitoring: the alert rules under promtool, and a real Prometheus scraping a real `voc-yolo serve` on loopback."
import json, shutil, subprocess, time, urllib.parse, urllib.request

import pytest
import yaml

from helpers import ROOT, free_port
from voc_yolo.harness import ServiceProcess
from voc_yolo.serve.testing import multipart

PROMTOOL, PROMETHEUS = shutil.which('promtool'), shutil.which('prometheus')
needs_prometheus = pytest.mark.skipif(not (PROMTOOL and PROMETHEUS),
                                     reason='prometheus/promtool are not installed: `make prometheus` (root) or apt-get install prometheus')
DEPLOY = ROOT/'deploy'


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=ROOT)


@needs_prometheus
@pytest.mark.parametrize('args', [('check', 'config', 'deploy/prometheus.yml'), ('check', 'rules', 'deploy/alerts.yml'),
                                  ('test', 'rules', 'deploy/alerts_test.yml')], ids=['check-config', 'check-rules', 'test-rules'])
def test_promtool(args):
    r = promtool(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'SUCCESS' in r.stdout + r.stderr


@needs_prometheus
def test_rule_tests_catch_a_broken_rule(tmp_path):
    "The rule tests can fail: the same tests against an error-ratio rule with a 50% threshold do."
    rules = (DEPLOY/'alerts.yml').read_text().replace('> 0.05', '> 0.5')
    (tmp_path/'alerts.yml').write_text(rules); shutil.copy(DEPLOY/'alerts_test.yml', tmp_path)
    r = subprocess.run([PROMTOOL, 'test', 'rules', str(tmp_path/'alerts_test.yml')], capture_output=True, text=True)
    assert r.returncode != 0 and 'VocYoloHighErrorRatio' in r.stdout + r.stderr, r.stdout + r.stderr


def query(url, q):
    with urllib.request.urlopen(f'{url}/api/v1/query?' + urllib.parse.urlencode({'query': q}), timeout=5) as r:
        return json.loads(r.read())['data']['result']


@needs_prometheus
def test_prometheus_stores_what_the_service_answered(tiny_run, tmp_path):
    "Prometheus (1 s scrapes, our rules loaded) holds exactly the number of predict requests sent, and sees the service up."
    repo = tiny_run['repo']; images = sorted((repo/'data/voc_yolo/images/test').iterdir())
    env = {'VOC_YOLO_DEPLOY': str(repo/'models/deploy'), 'VOC_YOLO_MODELS': str(tmp_path/'store')}
    svc = ServiceProcess(tmp_path/'serve.log', env)
    cfg = yaml.safe_load((DEPLOY/'prometheus.yml').read_text())
    cfg['global'] = dict(scrape_interval='1s', evaluation_interval='1s')
    cfg['rule_files'] = [str(DEPLOY/'alerts.yml')]
    cfg['scrape_configs'][0]['static_configs'] = [{'targets': [f'127.0.0.1:{svc.port}']}]
    (tmp_path/'prometheus.yml').write_text(yaml.safe_dump(cfg))
    port = free_port(); prom_url = f'http://127.0.0.1:{port}'
    prom = None
    try:
        svc.start().wait_ready(120)
        cmd = [PROMETHEUS, f'--config.file={tmp_path/"prometheus.yml"}', f'--storage.tsdb.path={tmp_path/"tsdb"}',
               f'--web.listen-address=127.0.0.1:{port}']
        prom = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp_path/'prometheus.log').open('w'))
        sent = 0
        for i in range(24):
            f = images[i % len(images)]
            body, ctype = multipart((f.name, f.read_bytes()))
            req = urllib.request.Request(f'{svc.url}/predict/deploy', data=body, headers={'Content-Type': ctype})
            with urllib.request.urlopen(req, timeout=30) as r: assert r.status == 200
            sent += 1
        q = 'sum(voc_yolo_http_requests_total{job="voc_yolo", route="/predict/{model_name}", status="200"})'
        deadline, got = time.time() + 60, None
        while time.time() < deadline:  # until a scrape after the last request has landed
            try: got = query(prom_url, q)
            except OSError: got = None
            if got and float(got[0]['value'][1]) == sent: break
            time.sleep(0.5)
        assert got and float(got[0]['value'][1]) == sent, (got, sent, (tmp_path/'prometheus.log').read_text()[-2000:])
        assert float(query(prom_url, 'up{job="voc_yolo"}')[0]['value'][1]) == 1
        assert float(query(prom_url, 'sum(voc_yolo_images_total{model="deploy"})')[0]['value'][1]) == sent
        with urllib.request.urlopen(f'{prom_url}/api/v1/rules', timeout=5) as r:
            rules = {x['name'] for g in json.loads(r.read())['data']['groups'] for x in g['rules']}
        assert rules == {'VocYoloDown', 'VocYoloHighErrorRatio', 'VocYoloSlowPredictions', 'VocYoloNoPredictions', 'VocYoloDrift'}
    finally:
        if prom:
            prom.terminate()
            try: prom.wait(20)
            except subprocess.TimeoutExpired: prom.kill(); prom.wait()
        svc.stop()
    assert prom.returncode is not None and svc.proc.poll() is not None
