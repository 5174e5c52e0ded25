"""Three `voc-yolo serve` replicas over one model store (a shared folder, and moto's S3 server) behind HAProxy
(deploy/haproxy.cfg, the load balancer's real binary), under load: one upload reaches every replica, and each replica
is restarted in turn (SIGTERM: /ready 503, drain, exit 0), with no failed request and the same count on both sides."""
import os
import shutil
import signal
import subprocess
import threading
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


class Load:
    "Clients posting one image at a time through the load balancer until stopped: counts, failures, the slowest."
    def __init__(self, url, image, clients=3):
        self.url, self.image, self.ok, self.failed, self.slowest, self.stop = url, image, 0, [], 0.0, threading.Event()
        self.threads = [threading.Thread(target=self.client) for _ in range(clients)]
        self.lock = threading.Lock()

    def client(self):
        s = requests.Session()
        while not self.stop.is_set():
            t = time.perf_counter()
            try: r = s.post(f'{self.url}/predict', files={'file': ('a.jpg', self.image)}, timeout=30); code = r.status_code
            except requests.RequestException as e: code = repr(e)
            with self.lock:
                self.slowest = max(self.slowest, time.perf_counter() - t)
                if code == 200: self.ok += 1
                else: self.failed.append(code)

    def __enter__(self):
        for t in self.threads: t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads: t.join(60)


def served_predicts(logs):
    "POST /predict requests the replicas answered, from their access logs (every incarnation)."
    return sum(p.read_text().count('"POST /predict HTTP/1.1" 200') for p in logs)


def names(replica):
    "The models one replica lists."
    return {m['name'] for m in requests.get(f'{replica.url}/models', timeout=5).json()}


@pytest.mark.parametrize('store', ['folder', 's3'])
def test_three_replicas_take_an_upload_and_a_rolling_restart_without_a_failed_request(store, deployed, tmp_path, request):
    env = {}
    if store == 's3':
        endpoint = request.getfixturevalue('s3')
        url, env = f's3://{BUCKET}/store-{uuid.uuid4().hex[:8]}', {**S3_ENV, 'AWS_ENDPOINT_URL': endpoint}
    else: url = str(tmp_path/'shared-store')
    flags = ('--deploy', str(deployed['deploy']), '--models', url, '--token', TOKEN, '--poll-s', '0.5', '--drain-s', '1',
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
        with Load(lb_url, deployed['images'][0].read_bytes()) as load:
            time.sleep(1)
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
        print(f'\n{store}: {load.ok} requests, {len(load.failed)} failed, slowest {load.slowest * 1e3:.0f} ms; upload on every '
              f'replica after {propagation:.2f} s; restarts {", ".join(f"{s:.1f}" for s in restart_s)} s')
        assert load.failed == [] and load.ok > 50, (load.failed[:5], load.ok)
        assert all(m['name'] == 'mine' and m['version'] == 1 for r in replicas
                   for m in requests.get(f'{r.url}/models', timeout=5).json() if m['name'] != 'deploy')
        assert all('mine' in names(r) for r in replicas)
    finally:
        for r in replicas: r.stop()
        lb.terminate(); lb.wait(10)
    assert served_predicts(logs) == load.ok, (served_predicts(logs), load.ok)  # no request lost, none answered twice


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
