"""Faults, not attacks: live `voc-yolo serve` replicas over an S3 model store (moto's server) reached through a fault
proxy, one injected fault at a time, with valid predictions running throughout.

Each case records what was served before and after (name@version), the valid requests answered, failed and left
unanswered (a client waits the service's request deadline plus 5 s), what /ready said during the fault and after it,
the store-poll counters, the S3 calls by kind (in the JSON), and the replica's peak RSS (the kernel's VmHWM); then it
checks the case's expectation (PASS / FAIL).

Cases: listing-denied (403 AccessDenied on every listing after a good poll), 5xx (503 SlowDown on every S3 call,
an upload meanwhile), slow (each S3 call 1 s late), half-manifest (a version whose manifest.json is cut halfway),
emptied (every object deleted, then restored), killed-upload (the replica taking an upload is SIGKILLed once its claim
is written), two-publishes (two `voc-yolo publish` at once), swap-under-load (three versions uploaded while four
clients predict on that name).

Usage: python benchmarks/faults.py [--model models/deploy] [--cases all|a,b] [--hold 3] [--json runs/faults/faults.json]
"""
import argparse
import http.client
import http.server
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import requests

from hostile import memory_kb
from voc_yolo.harness import ServiceProcess, free_port
from voc_yolo.serve.testing import jpeg

ROOT = Path(__file__).resolve().parents[1]
TOKEN, BUCKET, DEADLINE_S = 'faults-token', 'faults', 5.0
S3_ENV = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1'}
AUTH = {'Authorization': f'Bearer {TOKEN}'}
ERRORS = {403: b'<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
          503: b'<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'}


# ---- the fault proxy: S3 requests pass to moto, or get the fault of the moment --------------------------------------
class FaultProxy(http.server.ThreadingHTTPServer):
    "A loopback HTTP proxy in front of moto's S3; `mode` is ok | deny-list | 5xx | slow | slow-put; `calls` counts S3 calls by kind."
    daemon_threads = True

    def __init__(self, upstream_port:int):
        super().__init__(('127.0.0.1', 0), ProxyHandler)
        self.upstream, self.mode, self.calls, self.lock = upstream_port, 'ok', {}, threading.Lock()
        self.url = f'http://127.0.0.1:{self.server_address[1]}'

    def count(self, kind:str):
        with self.lock: self.calls[kind] = self.calls.get(kind, 0) + 1


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a): pass

    def body(self)->bytes:
        "The request body as sent: Content-Length bytes, or the raw chunked stream (botocore's aws-chunked uploads)."
        if 'chunked' not in self.headers.get('Transfer-Encoding', ''): return self.rfile.read(int(self.headers.get('Content-Length') or 0))
        raw = b''
        while True:
            line = self.rfile.readline(); raw += line; size = int(line.split(b';')[0], 16)
            if size == 0: break
            raw += self.rfile.read(size + 2)
        while (line := self.rfile.readline()) not in (b'\r\n', b''): raw += line  # trailers (checksums)
        return raw + b'\r\n'

    def relay(self):
        proxy, data = self.server, self.body()
        query = urllib.parse.urlsplit(self.path).query
        kind = 'LIST' if self.command == 'GET' and ('list-type' in query or 'prefix=' in query) else self.command
        proxy.count(kind)
        if proxy.mode == '5xx' or (proxy.mode == 'deny-list' and kind == 'LIST'):
            status = 503 if proxy.mode == '5xx' else 403
            return self.answer(status, {'Content-Type': 'application/xml'}, ERRORS[status])
        if proxy.mode == 'slow' or (proxy.mode == 'slow-put' and kind == 'PUT'): time.sleep(1.0)
        up = http.client.HTTPConnection('127.0.0.1', proxy.upstream, timeout=60)
        up.request(self.command, self.path, body=data, headers=dict(self.headers))
        r = up.getresponse(); payload = r.read(); up.close()
        headers = {k: v for k, v in r.getheaders() if k.lower() not in ('transfer-encoding', 'content-length', 'connection')}
        self.answer(r.status, headers, payload, head=self.command == 'HEAD', length=r.getheader('Content-Length'))

    def answer(self, status:int, headers:dict, payload:bytes, head:bool=False, length:str|None=None):
        self.send_response(status)
        for k, v in headers.items(): self.send_header(k, v)
        self.send_header('Content-Length', length if head and length else str(len(payload))); self.end_headers()
        if not head: self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay


# ---- the replicas and what they say --------------------------------------------------------------------------------
def replica(tmp:Path, name:str, proxy:FaultProxy, store:str, model:Path)->ServiceProcess:
    env = {**S3_ENV, 'AWS_ENDPOINT_URL': proxy.url, 'VOC_YOLO_MODELS': store, 'VOC_YOLO_DEPLOY': str(model), 'VOC_YOLO_TOKEN': TOKEN,
           'VOC_YOLO_POLL_S': '0.3', 'VOC_YOLO_REQUEST_TIMEOUT_S': str(DEADLINE_S), 'VOC_YOLO_CACHE_DIR': str(tmp/f'cache-{name}'),
           'VOC_YOLO_THREADS': '1', 'VOC_YOLO_STREAMS': '1', 'VOC_YOLO_DECODE_THREADS': '1'}
    return ServiceProcess(tmp/f'{name}.log', env).start().wait_ready()


def served(r:ServiceProcess)->list[str]:
    "What the replica serves, `name@version` (a model that failed to load is in /ready's `failed`)."
    models = requests.get(f'{r.url}/models', headers=AUTH, timeout=10).json()
    return sorted(f"{m['name']}@{m['version']}" for m in models if m.get('state') == 'ready')


def ready(r:ServiceProcess)->dict:
    x = requests.get(f'{r.url}/ready', headers=AUTH, timeout=10)
    return {'status': x.status_code, **{k: v for k, v in x.json().items() if k in ('store_error', 'failed', 'stalled')}}


def polls(r:ServiceProcess)->dict:
    text = requests.get(f'{r.url}/metrics', timeout=10).text
    return {o: float(line.split()[-1]) for o in ('ok', 'error') for line in text.splitlines()
            if line.startswith(f'voc_yolo_store_polls_total{{outcome="{o}"}}')}


def upload(r:ServiceProcess, model:Path, name:str='m', timeout:float=120)->requests.Response:
    files = [('file', (p.name, p.read_bytes())) for p in sorted(model.iterdir()) if p.is_file()]
    return requests.post(f'{r.url}/upload', data={'name': name}, files=files, headers=AUTH, timeout=timeout)


def wait_for(condition, timeout:float=30, what:str='')->float:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if condition(): return time.monotonic() - t
        time.sleep(0.1)
    raise TimeoutError(f'not within {timeout} s: {what}')


class Load(threading.Thread):
    "`clients` threads posting a JPEG to /predict/<name> in a closed loop; each answer's status, or 'unanswered'."
    def __init__(self, r:ServiceProcess, jpeg:bytes, names=('m', 'deploy'), clients:int=2):
        super().__init__(daemon=True); self.r, self.jpeg, self.names, self.clients = r, jpeg, names, clients
        self.stop, self.results, self.lock = threading.Event(), [], threading.Lock()

    def client(self, i:int):
        s = requests.Session()
        while not self.stop.is_set():
            name = self.names[i % len(self.names)]
            try: status = s.post(f'{self.r.url}/predict/{name}', files={'file': ('x.jpg', self.jpeg)}, timeout=DEADLINE_S + 5).status_code
            except requests.RequestException: status = 'unanswered'
            with self.lock: self.results.append(status)

    def run(self):
        ts = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in ts: t.start()
        for t in ts: t.join()

    def __enter__(self): self.start(); return self
    def __exit__(self, *exc): self.stop.set(); self.join(DEADLINE_S + 10)

    def tally(self)->dict:
        ok = sum(s == 200 for s in self.results); unanswered = sum(s == 'unanswered' for s in self.results)
        return {'ok': ok, 'failed': len(self.results) - ok - unanswered, 'unanswered': unanswered}


# ---- the cases: each injects one fault with valid predictions running, and says what it expects --------------------
class Bench:
    "moto's S3, the fault proxy, the store's prefix and replica A (uploads `m` version 1 first); `hold` s per fault."
    def __init__(self, tmp:Path, model:Path, hold:float):
        from moto.server import ThreadedMotoServer
        import boto3
        self.tmp, self.model, self.hold, port = tmp, model, hold, free_port()
        logging.getLogger('werkzeug').setLevel(logging.WARNING)  # not a line per S3 request
        self.moto = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False); self.moto.start()
        os.environ.update(S3_ENV)
        self.s3 = boto3.client('s3', endpoint_url=f'http://127.0.0.1:{port}'); self.s3.create_bucket(Bucket=BUCKET)
        self.proxy = FaultProxy(port); threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.prefix = f'store-{uuid.uuid4().hex[:8]}'; self.store = f's3://{BUCKET}/{self.prefix}'
        self.jpeg = jpeg(128, 96)
        self.a = replica(tmp, 'a', self.proxy, self.store, model)
        assert upload(self.a, model).status_code == 201, 'the first upload failed'

    def close(self):
        self.a.stop(); self.proxy.shutdown(); self.moto.stop()

    def keys(self)->list[str]:
        pages = self.s3.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix=self.prefix + '/')
        return [o['Key'] for page in pages for o in page.get('Contents', [])]

    def case(self, name:str, inject, expect)->dict:
        "Run `inject(during)` with predictions on `m` and `deploy` running; `during()` samples /ready and the served models."
        before, polls0, calls0, seen = served(self.a), polls(self.a), dict(self.proxy.calls), {}
        def during(): seen.update(served=served(self.a), ready=ready(self.a))
        t, pid = time.monotonic(), self.a.proc.pid
        Path(f'/proc/{pid}/clear_refs').write_text('5')  # reset the kernel's peak (VmHWM) to the current RSS, as make attacks does
        with Load(self.a, self.jpeg) as load:
            facts = inject(during) or {}
        after, polls1, peak_kb = served(self.a), polls(self.a), memory_kb(pid, 'VmHWM')
        row = dict(case=name, before=before, during=seen.get('served'), after=after, requests=load.tally(),
                   ready_during=seen.get('ready'), ready_after=ready(self.a),
                   polls={k: polls1.get(k, 0) - polls0.get(k, 0) for k in polls1}, peak_rss_mb=round(peak_kb / 1024),
                   s3_calls={k: n - calls0.get(k, 0) for k, n in self.proxy.calls.items()},
                   seconds=round(time.monotonic() - t, 1), **{'notes': '', **facts})
        row['verdict'] = 'PASS' if expect(row) and row['requests']['unanswered'] == 0 else 'FAIL'
        return row

    def fault(self, mode:str, during):
        "The proxy in `mode` for `hold` seconds (at least two polls), `during` sampled at its end; then back to ok and a good poll."
        self.proxy.mode = mode; time.sleep(self.hold); during(); self.proxy.mode = 'ok'
        wait_for(lambda: 'store_error' not in ready(self.a), 60, 'the store error clears once the store answers again')


def listing_denied(b:Bench)->dict:
    return b.case('listing-denied', lambda during: b.fault('deny-list', during),
                  lambda r: r['during'] == r['before'] == r['after'] and 'store_error' in r['ready_during']
                  and r['polls'].get('error', 0) > 0 and r['requests']['failed'] == 0)


def s3_5xx(b:Bench)->dict:
    def inject(during):
        b.proxy.mode = '5xx'; time.sleep(b.hold / 2)
        t = time.monotonic(); refused = upload(b.a, b.model).status_code  # the store cannot take it: 503, never a 500
        took = time.monotonic() - t  # botocore's and s3fs's retries, with backoff
        time.sleep(max(0.0, b.hold / 2 - took)); during(); b.proxy.mode = 'ok'
        wait_for(lambda: 'store_error' not in ready(b.a), 120, 'the store error clears')
        return dict(upload_status=refused, notes=f'an upload during the fault: {refused} after {took:.1f} s')
    return b.case('5xx', inject, lambda r: r['during'] == r['before'] == r['after'] and 'store_error' in r['ready_during']
                  and r['upload_status'] == 503 and r['requests']['failed'] == 0)


def slow(b:Bench)->dict:
    def inject(during):
        b.proxy.mode = 'slow'; time.sleep(2 * b.hold); during(); b.proxy.mode = 'ok'  # a poll now takes seconds
    return b.case('slow', inject, lambda r: r['during'] == r['before'] == r['after'] and r['requests']['failed'] == 0)


def half_manifest(b:Bench)->dict:
    def inject(during):
        v = 1 + max(int(k.split('/')[2]) for k in b.keys() if k.split('/')[1] == 'm')
        for f in sorted(b.model.iterdir()):
            if f.is_file(): b.s3.put_object(Bucket=BUCKET, Key=f'{b.prefix}/m/{v}/{f.name}', Body=f.read_bytes())
        manifest = json.dumps({'name': 'm', 'version': v, 'files': {f.name: {} for f in b.model.iterdir()}}).encode()
        b.s3.put_object(Bucket=BUCKET, Key=f'{b.prefix}/m/{v}/manifest.json', Body=manifest[:len(manifest) // 2])
        wait_for(lambda: 'm' in ready(b.a).get('failed', {}), 30, 'the cut manifest is reported'); during()
        return dict(notes=f'version {v} written with half a manifest')
    return b.case('half-manifest', inject, lambda r: r['during'] == r['before'] == r['after'] and 'm' in r['ready_during']['failed']
                  and r['requests']['failed'] == 0)


def emptied(b:Bench)->dict:
    def inject(during):
        saved = {k: b.s3.get_object(Bucket=BUCKET, Key=k)['Body'].read() for k in b.keys()}
        for k in saved: b.s3.delete_object(Bucket=BUCKET, Key=k)
        wait_for(lambda: 'store_error' in ready(b.a), 30, 'the emptied store is reported'); during()
        for k, data in saved.items(): b.s3.put_object(Bucket=BUCKET, Key=k, Body=data)
        wait_for(lambda: 'store_error' not in ready(b.a), 60, 'the restored store is read again')
        return dict(notes=f'{len(saved)} objects deleted, then restored')
    return b.case('emptied', inject, lambda r: r['during'] == r['before'] == r['after'] and 'store_error' in r['ready_during']
                  and r['requests']['failed'] == 0)


def killed_upload(b:Bench)->dict:
    def inject(during):
        other = replica(b.tmp, 'b', b.proxy, b.store, b.model)
        claims = set(k for k in b.keys() if k.endswith('/claim.json'))
        b.proxy.mode = 'slow-put'  # the upload's files go slowly: time to kill it between its claim and its manifest
        t = threading.Thread(target=lambda: _quietly(upload, other, b.model), daemon=True); t.start()
        wait_for(lambda: set(k for k in b.keys() if k.endswith('/claim.json')) - claims, 60, 'the upload claimed its number')
        other.proc.send_signal(signal.SIGKILL); other.proc.wait(); other.stop(); b.proxy.mode = 'ok'
        new = sorted(set(k for k in b.keys() if k.endswith('/claim.json')) - claims)
        during()
        nxt = upload(b.a, b.model).json()['version']  # the abandoned number is not taken again
        return dict(notes=f'killed after claiming {new[0].split("/")[2]}; the next upload got {nxt}')
    return b.case('killed-upload', inject, lambda r: r['during'] == r['before'] and r['after'] != r['before']
                  and r['requests']['failed'] == 0 and 'store_error' not in r['ready_after'])


def two_publishes(b:Bench)->dict:
    def inject(during):
        env = {**os.environ, **S3_ENV, 'AWS_ENDPOINT_URL': b.proxy.url}
        cmd = [sys.executable, '-c', 'import sys; from voc_yolo.cli import main; sys.exit(main())', 'publish', str(b.model),
               '--models', b.store, '--name', 'm']
        ps = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) for _ in range(2)]
        outs = [p.communicate(timeout=180)[0] for p in ps]
        assert all(p.returncode == 0 for p in ps), outs
        versions = sorted(int(re.search(r'/m/(\d+): published', o)[1]) for o in outs)
        wait_for(lambda: f'm@{versions[-1]}' in served(b.a), 30, 'replica A serves the newer one'); during()
        return dict(versions=versions, notes=f'two publishes at once took versions {versions}')
    return b.case('two-publishes', inject, lambda r: len(set(r['versions'])) == 2 and f"m@{r['versions'][-1]}" in r['after']
                  and r['requests']['failed'] == 0)


def swap_under_load(b:Bench)->dict:
    def inject(during):
        with Load(b.a, b.jpeg, names=('m',), clients=4) as heavy:
            versions = [upload(b.a, b.model).json()['version'] for _ in range(3)]
        during(); t = heavy.tally()
        return dict(heavy=t, notes=f'versions {versions} uploaded while 4 more clients predicted on m: {t["ok"]} ok, {t["failed"]} failed, '
                                   f'{t["unanswered"]} unanswered')
    return b.case('swap-under-load', inject, lambda r: r['requests']['failed'] == r['heavy']['failed'] == r['heavy']['unanswered'] == 0
                  and r['after'] != r['before'])


def _quietly(f, *a):
    try: f(*a)
    except requests.RequestException: pass  # the replica it talks to is killed on purpose


CASES = {'listing-denied': listing_denied, '5xx': s3_5xx, 'slow': slow, 'half-manifest': half_manifest, 'emptied': emptied,
         'killed-upload': killed_upload, 'two-publishes': two_publishes, 'swap-under-load': swap_under_load}


def table(rows:list[dict])->str:
    head = (f"{'case':16s} {'before':16s} {'after':16s} {'ok':>5s} {'fail':>5s} {'lost':>5s} {'polls ok/err':>12s} {'RSS MB':>7s}  "
            "verdict  /ready during the fault")
    lines = [head]
    for r in rows:
        q, p = r['requests'], r['polls']
        said = json.dumps({k: v for k, v in (r['ready_during'] or {}).items() if k != 'status'})[:90]
        lines.append(f"{r['case']:16s} {','.join(r['before']):16.16s} {','.join(r['after']):16.16s} {q['ok']:5d} {q['failed']:5d} "
                     f"{q['unanswered']:5d} {int(p.get('ok', 0)):5d}/{int(p.get('error', 0)):<6d} {r['peak_rss_mb']:7d}  "
                     f"{r['verdict']:7s}  {said}")
        if r['notes']: lines.append(f"{'':17s}{r['notes']}")
    return '\n'.join(lines)


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default=str(ROOT/'models/deploy'), help='the model folder served as deploy and uploaded as m')
    ap.add_argument('--cases', default='all', help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument('--hold', type=float, default=3.0, help='seconds each store fault lasts (the replicas poll every 0.3 s)')
    ap.add_argument('--json', default='', help='write the rows here too')
    a = ap.parse_args(argv)
    names = list(CASES) if a.cases == 'all' else a.cases.split(',')
    if unknown := [n for n in names if n not in CASES]: ap.error(f'--cases: unknown {unknown}; known: {", ".join(CASES)}')
    model = Path(a.model)
    if not model.is_dir(): ap.error(f'--model {model}: not a folder (make pipeline writes models/deploy)')
    rows = []
    with tempfile.TemporaryDirectory(prefix='voc-yolo-faults-') as tmp:
        b = Bench(Path(tmp), model, a.hold)
        try:
            for n in names:
                rows.append(CASES[n](b)); print(f"{n}: {rows[-1]['verdict']} ({rows[-1]['seconds']} s)", flush=True)
                if rows[-1]['verdict'] == 'FAIL': print(json.dumps(rows[-1], indent=1), flush=True)
        finally: b.close()
    print(table(rows))
    if a.json: Path(a.json).parent.mkdir(parents=True, exist_ok=True); Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r['verdict'] == 'PASS' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
