"""Three `voc-yolo serve` replicas over one model store (a shared folder, and moto's S3 server) behind HAProxy
(deploy/haproxy.cfg, the load balancer's real binary), under Locust's load (the load-test stage's users): one upload
reaches every replica, and each replica is restarted in turn (SIGTERM: /ready 503, drain, exit 0), with no failed
request and the same count on both sides."""
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import requests

from helpers import BUCKET, ROOT, S3_ENV
from voc_yolo.harness import ServiceProcess, free_port

TOKEN = 't0ken'


def haproxy(tmp, listen, replicas):
    "HAProxy with the committed config, in front of `replicas` (ports)."
    if not shutil.which('haproxy'): pytest.fail('haproxy is needed: `make haproxy` (tools/system_deps.sh)')
    env = {**os.environ, 'LISTEN': f'127.0.0.1:{listen}', **{f'REPLICA{i + 1}': f'127.0.0.1:{p}' for i, p in enumerate(replicas)}}
    log = (tmp/'haproxy.log').open('w')
    return subprocess.Popen(['haproxy', '-db', '-f', str(ROOT/'deploy/haproxy.cfg')], env=env, stdout=log, stderr=subprocess.STDOUT)


class Locust:
    "The load-test stage's Locust users (voc_yolo/locustfile.py, headless) through the load balancer until stopped (SIGTERM)."
    def __init__(self, url, images, tmp, users=3):
        from voc_yolo.loadtest import LoadtestParams, locust_command
        self.prefix = tmp/'locust'
        cmd, self.env = locust_command(url, self.prefix, images, LoadtestParams(users=users, spawn_rate=users, run_time=600, wait_max=0))
        self.cmd, self.log = cmd, (tmp/'locust.log').open('w')

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)  # the users finish the request they are in (--stop-timeout); the final statistics
        self.proc.wait(90); self.log.close()

    def stats(self)->tuple[dict, list]:
        "Per endpoint and `all`: requests, failures, the slowest (Locust's final statistics); and the failures themselves."
        from voc_yolo.loadtest import read_locust_failures, read_locust_stats
        return read_locust_stats(self.prefix), read_locust_failures(self.prefix)


ROUTES = {'/predict/deploy': 'POST /predict/deploy', '/predict/deploy/image': 'POST /predict/deploy/image', '/models': 'GET /models'}


def served(logs)->dict:
    "Requests the replicas answered 200, per Locust endpoint, from their access logs (every incarnation)."
    text = ''.join(p.read_text() for p in logs)
    return {name: text.count(f'"{line} HTTP/1.1" 200') for name, line in ROUTES.items()}


def listed(replica)->list:
    "The models one replica lists (asked directly, with a query string its access log tells apart from Locust's /models)."
    return requests.get(f'{replica.url}/models?probe=1', timeout=5).json()


def names(replica): return {m['name'] for m in listed(replica)}


@pytest.mark.parametrize('store', ['folder', 's3'])
def test_three_replicas_take_an_upload_and_a_rolling_restart_without_a_failed_request(store, deployed, tmp_path, request):
    env = {}
    if store == 's3':
        endpoint = request.getfixturevalue('s3')
        url, env = f's3://{BUCKET}/store-{uuid.uuid4().hex[:8]}', {**S3_ENV, 'AWS_ENDPOINT_URL': endpoint}
    else: url = str(tmp_path/'shared-store')
    flags = ('--deploy', str(deployed['deploy']), '--models', url, '--cache-dir', str(tmp_path/'cache'), '--token', TOKEN,
             '--poll-s', '0.5', '--drain-s', '1',
             '--threads', '1', '--streams', '1', '--decode-threads', '1', '--access-log')
    ports, logs = [free_port() for _ in range(3)], []

    def replica(i):
        logs.append(tmp_path/f'replica{i}-{len(logs)}.log')
        return ServiceProcess(logs[-1], env=env, port=ports[i], flags=flags).start()

    replicas = [replica(i) for i in range(3)]
    lb_port = free_port(); lb = haproxy(tmp_path, lb_port, ports)
    try:
        for r in replicas: r.wait_ready()
        lb_url = f'http://127.0.0.1:{lb_port}'
        deadline = time.time() + 30
        while requests.get(f'{lb_url}/ready', timeout=5).status_code != 200: assert time.time() < deadline; time.sleep(0.2)
        with Locust(lb_url, deployed['images'][0].parent, tmp_path) as load:
            time.sleep(2)  # Locust's start-up, then its users at work
            onnx = [('file', ('model.onnx', deployed['onnx'].read_bytes()))]
            auth = {'Authorization': f'Bearer {TOKEN}'}
            up = requests.post(f'{lb_url}/upload', data={'name': 'mine'}, files=onnx, headers=auth, timeout=120)
            assert up.status_code == 201, up.text
            t0 = time.perf_counter(); pending = set(range(3))
            while pending:
                pending = {i for i in pending if 'mine' not in names(replicas[i])}
                assert time.perf_counter() - t0 < 30, f'replicas {pending} did not serve the upload within 30 s'
                time.sleep(0.05)
            propagation = time.perf_counter() - t0
            restart_s = []
            for i in range(3):  # a rolling restart: one replica at a time, the next once this one is back
                t = time.perf_counter(); replicas[i].proc.send_signal(signal.SIGTERM)
                assert replicas[i].proc.wait(60) == 0, logs[-1].read_text()[-2000:]
                replicas[i].log.close(); replicas[i] = replica(i).wait_ready()
                restart_s.append(time.perf_counter() - t)
                time.sleep(1)  # HAProxy sees it ready again (rise 2 × 300 ms)
        stats, failures = load.stats()
        total = stats['all']
        print(f'\n{store}: Locust sent {total["requests"]} requests, {total["failures"]} failed, slowest {total["max_ms"]:.0f} ms; '
              f'upload on every replica after {propagation:.2f} s; restarts {", ".join(f"{s:.1f}" for s in restart_s)} s')
        assert total['failures'] == 0 and total['requests'] > 50, (failures[:5], total)
        assert all(m['version'] == 1 for r in replicas for m in listed(r) if m['name'] == 'mine')
        assert all('mine' in names(r) for r in replicas)
    finally:
        for r in replicas: r.stop()
        lb.terminate(); lb.wait(10)
    sent = {name: r['requests'] for name, r in stats.items() if name != 'all'}
    assert served(logs) == sent, (served(logs), sent)  # no request lost, none answered twice


def test_a_store_that_cannot_be_read_keeps_the_loaded_models_served(deployed, tmp_path):
    from voc_yolo.serve.settings import Settings
    from voc_yolo.serve.store import ModelStore
    (tmp_path/'not-a-folder').write_text('x')
    odd = ModelStore(Settings(deploy=str(deployed['deploy']), models=str(tmp_path/'not-a-folder'), threads=1, streams=1, poll_s=0))
    try:
        odd.load()
        assert 'not-a-folder: not a folder' in (odd.poll_error or '') and 'deploy' in odd.models, (odd.poll_error, list(odd.models))
    finally: odd.close()


def eq(a, b): assert a == b, (a, b)


def test_two_stores_in_process_converge_on_uploads_and_retired_versions(deployed, tmp_path):
    "Two replicas' ModelStores over one folder: what one uploads the other serves after one sync; retired versions go the same way."
    from voc_yolo.serve.settings import Settings
    from voc_yolo.serve.shared import retire
    from voc_yolo.serve.store import ModelStore
    shared = Settings(deploy=str(deployed['deploy']), models=str(tmp_path/'shared'), threads=1, streams=1, poll_s=0)
    a, b = ModelStore(shared).load(), ModelStore(shared).load()
    eq((sorted(a.models), sorted(b.models)), (['deploy'], ['deploy']))
    a.add('mine', {'m.onnx': deployed['onnx'].read_bytes()}); a.add('mine', {'m.onnx': deployed['onnx'].read_bytes()})
    eq('mine' in b.models, False)
    t = time.perf_counter(); eq(b.sync(), True)
    print(f'b serves what a uploaded after one sync: {time.perf_counter() - t:.2f} s (fetch, check, load, warm up)')
    eq((b.get('mine').version, b.get('mine').origin), (2, 'upload'))
    eq(b.sync(), False)  # nothing changed: one listing, no load
    retire(a.files, 'mine', 2); b.poll()
    eq(b.get('mine').version, 1)  # the newest version left
    retire(a.files, 'mine', 1); b.poll()
    eq((sorted(b.models), b.poll_error), (['deploy'], None))  # every version retired: unlisted
    a.close(); b.close()
