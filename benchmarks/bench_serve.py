"""Benchmark with verdicts: the inference service against the in-process limit, the seed project's pattern, LitServe and
BentoML, on the same model file, the same JPEGs and the same cores, in one run.

  (a) in process: decode + letterbox + infer + NMS with `voc_yolo.runtime.Predictor` and `voc_yolo.batching.MicroBatcher`,
      16 threads each with one image in flight, the best of a few stream/thread/batch settings, no HTTP;
  (b) `voc-yolo serve` with those settings;
  (c) the seed pattern, FastAPI calling `ultralytics.YOLO(<same file>).predict` per request (benchmarks/bench_serve_seed.py);
  (d) LitServe and (e) BentoML serving the same Predictor with their own batching (benchmarks/peer_*.py), each in its
      own environment (make peers); left out, and said so, where that environment is missing.
Every setup is measured once per round at 1, 4 and 16 clients (closed loops over keep-alive connections: wrk, or one
asyncio process where wrk is missing), in an order drawn at random, for at least --rounds rounds; (b) at 16 clients is
measured twice per round, the A/A control. A round is dropped (and counted) when more than 2% of the machine's time was
stolen during it. The figure that is gated is CPU per image: user + system time of the server's
whole process tree (of `time.process_time` for (a) and one image alone) over the measured window, divided by the images
answered; the load generator is not counted. Each comparison is the median of its paired per-round ratios with a
bootstrap 95% interval, PASS / FAIL / INCONCLUSIVE against its target (voc_yolo.verdict); undecided comparisons get more
rounds; no round past --rounds starts after --max-minutes.
Results: runs/bench_serve/verdicts_<imgsz>.json, and throughput against clients per setup in throughput_<imgsz>.png.
`--imgsz 640` exports models/best.pt at 640 px (OpenVINO, its default precision) and measures that instead.
Usage: python benchmarks/bench_serve.py [--model models/deploy] [--seconds 3] [--rounds 10] [--imgsz 640]
"""
import argparse
import asyncio
import os
import re
import shutil
import signal
import json
import statistics
import subprocess
import sys
import time
import uuid
from functools import partial
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tests'))
from helpers import free_port, ultralytics_path  # noqa: E402

from voc_yolo.verdict import Comparison, interleaved_rounds, judge, median_interval, tree_cpu_s  # noqa: E402

B, C, D, E = '(b) voc-yolo serve', '(c) seed: YOLO.predict', '(d) LitServe', '(e) BentoML'
PEERS = {D: 'litserve', E: 'bentoml'}  # setup -> its environment under .cache/peers (make peers) and its module
PEER_MAX_BATCH = 8  # the peers batch as their docs show, whatever (a) found best for (b) (BentoML refuses a batch of 1)
CPU_TARGET = {128: 1.20, 640: 1.05}  # (b)'s CPU per image over (a)'s at 16 clients, by image size (issue 38)


def multipart(path: str, name: str, data: bytes) -> bytes:
    "One complete HTTP/1.1 POST of `data` as the multipart field `file`."
    b = uuid.uuid4().hex
    body = (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
            + data + f'\r\n--{b}--\r\n'.encode())
    head = (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={b}\r\n'
            f'Content-Length: {len(body)}\r\n\r\n')
    return head.encode() + body


async def read_answer(reader) -> bytes:
    "One HTTP/1.1 answer off a keep-alive connection: its head is returned, its body (Content-Length bytes) read and dropped."
    head = await reader.readuntil(b'\r\n\r\n')
    await reader.readexactly(int(re.search(rb'(?i)content-length: *(\d+)', head).group(1)))
    return head


async def closed_loop(port: int, requests_: list, clients: int, seconds: float) -> dict:
    "`clients` connections each sending its next request as soon as the last answer arrived, for `seconds`."
    lat, codes, phases = [], [], {}
    async def client(k):
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        i = k
        while time.perf_counter() < end:
            t = time.perf_counter(); writer.write(requests_[i % len(requests_)]); i += clients
            head = await read_answer(reader)
            lat.append(time.perf_counter() - t); codes.append(int(head[9:12]))
            if st := re.search(rb'(?i)server-timing: *([^\r]+)', head):
                for phase, ms in (kv.split(';dur=') for kv in st.group(1).decode().split(', ')):
                    phases.setdefault(phase, []).append(float(ms))
        writer.close()
    end = time.perf_counter() + seconds; t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    ms = np.array(lat) * 1e3
    return dict(rps=len(lat) / (time.perf_counter() - t0), p50=float(np.percentile(ms, 50)), p99=float(np.percentile(ms, 99)),
                errors=sum(c != 200 for c in codes), n=len(lat), phases={k: float(np.median(v)) for k, v in phases.items()})


def load(port: int, path: str, jpegs: list, clients: int, seconds: float) -> dict:
    "`clients` closed loops from this process (asyncio) for `seconds`: requests/s, p50, p99, errors."
    return asyncio.run(closed_loop(port, [multipart(path, f'{i}.jpg', d) for i, d in enumerate(jpegs)], clients, seconds))


def wrk_ms(text: str) -> float:
    "A wrk duration (850.00us, 5.01ms, 1.20s) in ms."
    value, unit = re.fullmatch(r'([\d.]+)(us|ms|s|m)', text).groups()
    return float(value) * {'us': 1e-3, 'ms': 1, 's': 1e3, 'm': 6e4}[unit]


def run_wrk(url: str, listing: Path, clients: int, seconds: float) -> dict:
    "One closed-loop run of wrk: requests/s, p50, p99, and the answers that were not 2xx (or never came)."
    cmd = ['wrk', '-t1', f'-c{clients}', f'-d{max(1, round(seconds))}s', '--latency', '-s', str(ROOT/'benchmarks/post.lua'), url]
    out = subprocess.run([*cmd, '--', str(listing)], capture_output=True, text=True, check=True).stdout
    get = lambda pattern: re.search(pattern, out)
    bad = get(r'Non-2xx or 3xx responses: (\d+)'); sock = get(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)')
    return dict(rps=float(get(r'Requests/sec:\s+([\d.]+)').group(1)), p50=wrk_ms(get(r'\n\s+50%\s+(\S+)').group(1)),
                p99=wrk_ms(get(r'\n\s+99%\s+(\S+)').group(1)), n=int(get(r'(\d+) requests in').group(1)),
                errors=(int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0))


def phase_sums(port: int) -> dict:
    "{phase: (seconds, requests)} from the service's phase histogram in /metrics (None where it has none)."
    text = requests.get(f'http://127.0.0.1:{port}/metrics', timeout=10).text
    found = re.findall(r'voc_yolo_request_phase_seconds_(sum|count)\{phase="(\w+)"\} ([\d.e+-]+)', text)
    out = {}
    for kind, phase, v in found: out.setdefault(phase, {})[kind] = float(v)
    return {k: (v['sum'], v['count']) for k, v in out.items()}


def measure_server(proc, port: int, clients: int, seconds: float, client: str, listing: Path, jpegs: list, phases: bool) -> dict:
    """One closed-loop load on a server: wall figures, the CPU its whole process tree spent per image answered, and where
    (b)'s milliseconds went (`phases`: medians of Server-Timing with the python client, means from /metrics with wrk)."""
    before_phases = phase_sums(port) if phases else {}
    cpu = tree_cpu_s(proc.pid)
    r = (run_wrk(f'http://127.0.0.1:{port}/predict/deploy', listing, clients, seconds) if client == 'wrk' else
         load(port, '/predict/deploy', jpegs, clients, seconds))
    answered = r['n'] - r['errors']
    r['cpu_ms'] = (tree_cpu_s(proc.pid) - cpu) * 1e3 / max(1, answered)
    r['rps'] *= answered / max(1, r['n'])  # throughput counts the images answered: a refusal (BentoML's past max_latency_ms) is none
    if phases:  # wrk reads no headers: the means of the service's phase histogram over the window, from /metrics
        after, zero = phase_sums(port), (0, 0)
        r['phases'] = {k: (s - before_phases.get(k, zero)[0]) * 1e3 / (n - before_phases.get(k, zero)[1])
                       for k, (s, n) in after.items() if n > before_phases.get(k, zero)[1]}
    return r


class InProcess:
    "(a): decode + letterbox + micro-batched inference + NMS, `feeders` threads each with one image in flight, no HTTP."
    def __init__(self, model: Path, jpegs: list, streams: int, threads: int, max_batch: int, feeders: int = 16):
        from voc_yolo.batching import MicroBatcher
        from voc_yolo.runtime import Predictor, decode_image
        self.decode, self.jpegs, self.feeders = decode_image, jpegs, feeders
        self.pred = Predictor(model, threads=threads, streams=streams).warmup(); self.batcher = MicroBatcher(self.pred, max_batch)
        self.config = dict(streams=streams, threads=threads, max_batch=max_batch)

    def measure(self, seconds: float) -> dict:
        end, counts = time.perf_counter() + seconds, [0] * self.feeders
        def work(k):
            i = k
            while time.perf_counter() < end:
                p = self.pred.prepare(self.decode(self.jpegs[i % len(self.jpegs)]))
                self.batcher.submit(p.x, lambda out, ms, p=p: self.pred.finish(out, p, ms)).result()
                counts[k] += 1; i += self.feeders
        t0, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(self.feeders) as ex: list(ex.map(work, range(self.feeders)))
        n = sum(counts)
        return dict(rps=n / (time.perf_counter() - t0), cpu_ms=(time.process_time() - cpu) * 1e3 / n, n=n, errors=0, **self.config)

    def close(self): self.batcher.close()


class OneImage:
    "One image alone, back to back, on every core's thread: the least one client can wait, and the CPU one image costs."
    def __init__(self, model: Path, jpegs: list, threads: int):
        from voc_yolo.runtime import Predictor, decode_image
        self.decode, self.jpegs = decode_image, jpegs
        self.pred = Predictor(model, threads=threads, streams=1).warmup()

    def measure(self, seconds: float) -> dict:
        ms, end, cpu = [], time.perf_counter() + seconds, time.process_time()
        while time.perf_counter() < end:
            t = time.perf_counter(); self.pred.predict_one(self.decode(self.jpegs[len(ms) % len(self.jpegs)]))
            ms.append((time.perf_counter() - t) * 1e3)
        cpu_ms = (time.process_time() - cpu) * 1e3 / len(ms)
        return dict(rps=len(ms) / seconds, p50=statistics.median(ms), cpu_ms=cpu_ms, n=len(ms), errors=0)


def idle_policy() -> str:
    "How this machine's idle cores wait (Linux cpuidle): the driver, and a KVM guest's halt-polling window where it has one."
    base = Path('/sys/devices/system/cpu/cpuidle')
    driver = (base/'current_driver').read_text().strip() if (base/'current_driver').is_file() else 'not exposed'
    poll = Path('/sys/module/haltpoll/parameters/guest_halt_poll_ns')
    return f"cpuidle driver {driver}" + (f", guest_halt_poll_ns {poll.read_text().strip()}" if poll.is_file() else '')


def wait_ready(url: str, proc, timeout: float = 120, log: Path | None = None):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            tail = f'; the end of its log, {log}:\n{log.read_text()[-2000:]}' if log else ''
            raise SystemExit(f'{url}: the server exited ({proc.returncode}){tail}')
        try:
            if requests.get(url, timeout=2).status_code in (200, 405): return
        except requests.RequestException: pass  # not listening yet, or too busy starting to answer within 2 s
        time.sleep(0.3)
    raise SystemExit(f'{url}: not ready in {timeout} s')


def run_server(cmd: list, ready_url: str, env=None, log: Path | None = None):
    "Start a server in a process group of its own (LitServe and BentoML start workers of their own) and wait until it answers."
    out = open(log, 'w') if log else subprocess.DEVNULL  # noqa: SIM115 - the server writes to it until it stops
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try: wait_ready(ready_url, proc, log=log)
    except BaseException: stop(proc); raise
    return proc


def stop(proc):
    "SIGTERM to the server's whole process group, then SIGKILL to whatever of it is left: no worker outlives the benchmark."
    resume(proc)
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: return
        try: proc.wait(wait)
        except subprocess.TimeoutExpired: pass


def pause(proc):
    "Freeze a server's whole process group: an idle server that polls (LitServe's worker loop does) takes no core from the one measured."
    try: os.killpg(proc.pid, signal.SIGSTOP)
    except ProcessLookupError: pass


def resume(proc):
    try: os.killpg(proc.pid, signal.SIGCONT)
    except ProcessLookupError: pass


def focus(servers: dict, setup: str | None):
    "Only `setup`'s server runs (none for the in-process cells); every other server is frozen until its own cell."
    for k, (proc, _) in servers.items():
        if k != setup: pause(proc)
    if setup in servers: resume(servers[setup][0])


def focused(servers: dict, setup: str | None, measure):
    "A cell of the rounds: `measure` with only `setup`'s server running."
    def cell():
        focus(servers, setup); return measure()
    return cell


def export_640(best: Path) -> Path:
    from voc_yolo.weights import ultralytics_export
    return ultralytics_export(best, ROOT/'runs/bench_serve/640', format='openvino', imgsz=640)


def peer_python(setup: str) -> Path | None:
    "The Python of a peer's own environment (make peers), or None where it was not built."
    py = ROOT/'.cache/peers'/PEERS[setup]/'bin/python'
    return py if py.is_file() else None


def peer_version(setup: str) -> str:
    mod = PEERS[setup]
    return subprocess.run([str(peer_python(setup)), '-c', f'import {mod}; print({mod}.__version__)'], capture_output=True, text=True,
                          check=True).stdout.strip()


def server_command(k: str, port: int, model: Path, imgsz: int, cfg: list, out: Path) -> tuple[list, str, dict]:
    "How to start setup `k` on `port`: its command, the path that answers once it is ready, its environment."
    if k == B:
        return ([shutil.which('voc-yolo'), 'serve', '--port', str(port), '--deploy', str(model),
                 '--models', str(out/'store'), '--max-queue', '256', *cfg], '/ready', {})
    if k == C:
        seed = ultralytics_path(model, out/'seed_openvino_model')
        return ([sys.executable, '-m', 'uvicorn', '--app-dir', str(ROOT/'benchmarks'), 'bench_serve_seed:app', '--port', str(port),
                 '--log-level', 'warning'], '/docs', {'SEED_MODEL': str(seed), 'SEED_IMGSZ': str(imgsz)})
    env = {'PEER_MODEL': str(model), 'PEER_THREADS': str(os.cpu_count()), 'PEER_MAX_BATCH': str(PEER_MAX_BATCH)}
    if k == D: return [str(peer_python(D)), str(ROOT/'benchmarks/peer_litserve.py')], '/health', {**env, 'PEER_PORT': str(port)}
    return ([str(peer_python(E)), '-m', 'bentoml', 'serve', 'peer_bentoml:Detect', '--working-dir', str(ROOT/'benchmarks'),
             '--host', '127.0.0.1', '--port', str(port)], '/readyz', env)


def start_servers(model: Path, imgsz: int, cfg: list, setups: list, logs: Path) -> dict:
    "Every server of `setups` on a port of its own, its output in `logs`/<setup>.log: {setup: (process, port)}."
    servers = {}
    try:
        for k in setups:
            port = free_port(); cmd, ready, env = server_command(k, port, model, imgsz, cfg, logs)
            log = logs/f"{re.sub(r'[^a-z0-9]+', '-', k.lower()).strip('-')}.log"
            servers[k] = (run_server(cmd, f'http://127.0.0.1:{port}{ready}', env, log), port)
    except BaseException:
        for proc, _ in servers.values(): stop(proc)
        raise
    return servers


def first_requests(servers: dict, jpeg: bytes):
    for k, (_, port) in servers.items():
        first = requests.post(f'http://127.0.0.1:{port}/predict/deploy', files={'file': ('0.jpg', jpeg, 'image/jpeg')}, timeout=300)
        if first.status_code != 200: raise SystemExit(f'{k} on port {port}: {first.status_code} {first.text[:300]}')


def comparisons(imgsz: int, top: int, one: int, setups: list) -> tuple[list, list]:
    "What the run decides (issue 38's targets), and the A/A controls: (b) at `top` clients against its second measurement."
    b, b1 = f'{B} @{top}', f'{B} @{one}'
    cs = [Comparison(f'CPU/image (b)/(a) at {top} clients', b, '(a) in process', 'cpu_ms', CPU_TARGET.get(imgsz, CPU_TARGET[128])),
          Comparison(f'CPU/request (b) at {one} client / one image alone', b1, 'one image alone', 'cpu_ms', 1.5),
          Comparison(f'req/s (b)/(c) at {top} clients', b, f'{C} @{top}', 'rps', 2.5, 'higher')]
    for k in (D, E):
        if k in setups:
            cs += [Comparison(f'req/s (b)/{k[:3]} at {top} clients', b, f'{k} @{top}', 'rps', 1.3, 'higher'),
                   Comparison(f'p99 (b)/{k[:3]} at {top} clients', b, f'{k} @{top}', 'p99', 1.0)]
    controls = [Comparison(f'A/A {m} (b) at {top} clients', f'{b} again', b, m, 1.0) for m in ('cpu_ms', 'rps', 'p99')]
    return cs, controls


def idle_cpu(servers: dict, seconds: float) -> dict:
    "The CPU each server spends doing nothing for `seconds`, as a share of one core (a Kubernetes CPU limit pays for it)."
    before = {k: tree_cpu_s(proc.pid) for k, (proc, _) in servers.items()}
    time.sleep(seconds)
    return {k: (tree_cpu_s(proc.pid) - before[k]) / seconds for k, (proc, _) in servers.items()}


def table(rounds: list, cells: list) -> list:
    "Per cell: the medians over rounds of CPU per image, req/s, p50 and p99, and req/s's interval."
    rows = []
    for cell in cells:
        rs = [r[cell] for r in rounds]
        med = lambda k, rs=rs: statistics.median(r[k] for r in rs) if all(k in r for r in rs) else None
        rps = median_interval([r['rps'] for r in rs])  # main() stops before this with fewer than 2 rounds
        rows.append(dict(cell=cell, cpu_ms=med('cpu_ms'), rps=rps[0], rps_low=rps[1], rps_high=rps[2], p50=med('p50'), p99=med('p99'),
                         errors=sum(r.get('errors', 0) for r in rs)))
    return rows


def plot(rows: list, setups: list, clients: list, title: str, out: Path):
    "Throughput against clients per server, the median of the rounds with its bootstrap interval; (a) as a line."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by = {r['cell']: r for r in rows}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k in setups:
        ys = [by[f'{k} @{c}'] for c in clients]
        ax.errorbar(clients, [y['rps'] for y in ys], yerr=[[y['rps'] - y['rps_low'] for y in ys], [y['rps_high'] - y['rps'] for y in ys]],
                    marker='o', capsize=3, label=k)
    ax.axhline(by['(a) in process']['rps'], ls='--', c='grey', label='(a) in process, 16 threads')
    ax.set(xscale='log', xticks=clients, xticklabels=[str(c) for c in clients], xlabel='concurrent clients', ylabel='requests/s',
           title=title)
    ax.minorticks_off(); ax.legend(fontsize=8); fig.tight_layout(); fig.savefig(out, dpi=120); plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='models/deploy', help='the model to serve (default: the pipeline\'s deployed model)')
    ap.add_argument('--images', default='data/voc_yolo/images/test', help='JPEGs to post')
    ap.add_argument('--seconds', type=float, default=3, help='measured seconds per setup and round (wrk: whole seconds)')
    ap.add_argument('--imgsz', type=int, default=0, help='640: export models/best.pt at 640 px and measure that model')
    ap.add_argument('--clients', default='1,4,16', help='concurrent clients per server')
    ap.add_argument('--rounds', type=int, default=10, help='interleaved rounds at least (more while a comparison is undecided)')
    ap.add_argument('--max-minutes', type=float, default=20, help='no round past --rounds starts after this (undecided stays so)')
    ap.add_argument('--max-steal', type=float, default=0.02, help='drop a round in which a cell saw more steal time than this share')
    ap.add_argument('--idle-seconds', type=float, default=30, help='how long to measure the idle servers\' CPU')
    ap.add_argument('--peers', default='auto', choices=('auto', 'none'), help='auto: (d) and (e) where make peers built them')
    ap.add_argument('--client', choices=('auto', 'wrk', 'python'), default='auto', help='load generator (auto: wrk where installed)')
    ap.add_argument('--out', default='runs/bench_serve', help='where the JSON and the plot go')
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed benchmark stops its servers too (the finally below)
    client = a.client if a.client != 'auto' else 'wrk' if shutil.which('wrk') else 'python'
    if client == 'wrk' and not shutil.which('wrk'): raise SystemExit('--client wrk: wrk is not installed (make wrk)')
    if a.rounds < 2: raise SystemExit(f'--rounds {a.rounds}: an interval needs at least 2 rounds')
    from voc_yolo.core import offline_setup
    from voc_yolo.runtime import model_metadata, single_threaded_opencv
    offline_setup(); single_threaded_opencv()  # as in `voc-yolo serve`: (a) and the single image run the service's code, minus HTTP
    model = export_640(ROOT/'models/best.pt') if a.imgsz == 640 else (ROOT/a.model).resolve()
    imgsz = model_metadata(model)['imgsz'][0]
    files = sorted((ROOT/a.images).glob('*.jpg'))[:200]
    if not files: raise SystemExit(f'--images {a.images}: no JPEGs there')
    jpegs = [f.read_bytes() for f in files]
    out = ROOT/a.out; out.mkdir(parents=True, exist_ok=True)
    listing = out/'jpegs.txt'; listing.write_text(''.join(f'{f.resolve()}\n' for f in files))
    cores, clients = os.cpu_count(), sorted(int(c) for c in a.clients.split(','))
    top, one = clients[-1], clients[0]
    peers = [k for k in (D, E) if a.peers == 'auto' and peer_python(k)]
    setups = [B, C, *peers]
    print(f'model {model} ({imgsz} px), {len(jpegs)} JPEGs, {cores} cores, {a.seconds:g} s per cell, client: {client}; {idle_policy()}')
    versions = {k: peer_version(k) for k in peers}
    for k in (D, E):
        print(f"{k}: {f'version {versions[k]}' if k in versions else 'left out: its environment is missing (make peers)'}")

    configs = [(cores, 1, 1), (cores, 1, 8), (1, cores, 8), (max(1, cores // 2), 2, 8)]  # streams, threads, max_batch
    tried = []
    for st, th, mb in dict.fromkeys(configs):  # each tried setting's predictor is released before the next (no idle threads linger)
        ip = InProcess(model, jpegs, st, th, mb); tried.append(ip.measure(a.seconds)); ip.close(); del ip
    best = max(tried, key=lambda r: r['rps'])
    for r in tried:
        print(f"(a) {r['streams']} streams x {r['threads']} threads, batches up to {r['max_batch']}: {r['rps']:8.1f} images/s")
    cfg = ['--streams', str(best['streams']), '--threads', str(best['threads']), '--max-batch', str(best['max_batch'])]
    a_setup, alone = InProcess(model, jpegs, best['streams'], best['threads'], best['max_batch']), OneImage(model, jpegs, cores)
    cs, controls = comparisons(imgsz, top, one, setups)
    servers = start_servers(model, imgsz, cfg, setups, out)
    try:
        first_requests(servers, jpegs[0])  # no timing sees a first compile (the seed's model compiles on its first predict)
        cells = {'(a) in process': focused(servers, None, partial(a_setup.measure, a.seconds)),
                 'one image alone': focused(servers, None, partial(alone.measure, a.seconds))}
        for k in setups:
            for c in clients:
                proc, port = servers[k]
                load_it = partial(measure_server, proc, port, c, a.seconds, client, listing, jpegs, k == B and client == 'wrk')
                cells[f'{k} @{c}'] = focused(servers, k, load_it)
        cells[f'{B} @{top} again'] = cells[f'{B} @{top}']
        for f in cells.values(): f()  # warm-up: connections, caches, first batches; not kept
        print(f"\n{len(cells)} cells per round, in a random order; at least {a.rounds} rounds, more while undecided, "
              f"for {a.max_minutes:g} minutes at most")
        decided = lambda rounds: all(r['verdict'] != 'INCONCLUSIVE' for r in judge(rounds, cs, controls)['comparisons'])
        run = interleaved_rounds(cells, decided, min_rounds=a.rounds, max_s=a.max_minutes * 60, max_steal=a.max_steal)
        for proc, _ in servers.values(): resume(proc)
        idle = idle_cpu(servers, a.idle_seconds)
    finally:
        for proc, _ in servers.values(): stop(proc)
        a_setup.close()
    if len(run['rounds']) < 2:
        raise SystemExit(f"{run['dropped']} rounds dropped for steal time, {len(run['rounds'])} kept: too noisy to judge")
    verdicts = judge(run['rounds'], cs, controls, min_rounds=a.rounds)
    rows = table(run['rounds'], list(cells))
    print_phases(run['rounds'], clients)
    report(rows, verdicts, run, idle, a.idle_seconds)
    result = dict(model=str(model), imgsz=imgsz, cores=cores, client=client, seconds=a.seconds, idle_policy=idle_policy(), config=cfg,
                  peers={k: dict(version=v, settings=PEER_SETTINGS[k]) for k, v in versions.items()},
                  rounds_kept=len(run['rounds']), rounds_dropped=run['dropped'], minutes=run['seconds'] / 60, capped=run['capped'],
                  verdicts=verdicts, idle_cpu_core_share=idle, table=rows, rounds=run['rounds'])
    (out/f'verdicts_{imgsz}.json').write_text(json.dumps(result, indent=1, default=str))
    title = f"{imgsz} px, {cores} cores: median of {len(run['rounds'])} rounds, 95% interval"
    plot(rows, setups, clients, title, out/f'throughput_{imgsz}.png')
    print(f"\n{out/f'verdicts_{imgsz}.json'}, {out/f'throughput_{imgsz}.png'}")


PEER_SETTINGS = {D: 'one worker on every core, LitAPI max_batch_size 8, batch_timeout 2 ms',
                 E: 'one worker on every core, batchable API, max_batch_size 8, max_latency_ms 10000, access log off'}


def print_phases(rounds: list, clients: list):
    "Where (b)'s milliseconds went, per client count: each phase's median over the rounds."
    rows = {c: [r[f'{B} @{c}']['phases'] for r in rounds if r[f'{B} @{c}'].get('phases')] for c in clients}
    if not any(rows.values()): return print(f'\n{B} reported no phases')
    names = list(dict.fromkeys(k for rs in rows.values() for r in rs for k in r))
    print(f"\n(b)'s phases (serve.timing), ms per request\n{'clients':>7s} " + ' '.join(f'{n:>9s}' for n in names))
    for c, rs in rows.items():
        if rs: print(f'{c:7d} ' + ' '.join(f"{statistics.median(r.get(n, 0) for r in rs):9.3f}" for n in names))


def report(rows: list, verdicts: dict, run: dict, idle: dict, idle_seconds: float):
    print(f"\n{'cell':34s} {'CPU ms/img':>10s} {'req/s':>8s} {'(95% interval)':>17s} {'p50 ms':>7s} {'p99 ms':>7s} {'errors':>6s}"
          f"   (medians of {len(run['rounds'])} rounds; {run['dropped']} dropped for steal)")
    fmt = lambda v, w, d: f'{v:{w}.{d}f}' if v is not None else f"{'-':>{w}s}"
    for r in rows:
        interval = f"({r['rps_low']:.1f}-{r['rps_high']:.1f})"
        print(f"{r['cell']:34s} {fmt(r['cpu_ms'], 10, 2)} {r['rps']:8.1f} {interval:>17s} "
              f"{fmt(r['p50'], 7, 2)} {fmt(r['p99'], 7, 2)} {r['errors']:6d}")
    print(f"\n{'comparison':48s} {'median':>7s} {'95% interval':>15s} {'target':>9s}  verdict")
    for r in verdicts['aa'] + verdicts['comparisons']:
        sign = '<=' if r['better'] == 'lower' else '>='
        target = '±3% of 1' if r['name'].startswith('A/A') else f"{sign} {r['target']:g}"
        interval = f"({r['low']:.3f}-{r['high']:.3f})"
        print(f"{r['name']:48s} {r['median']:7.3f} {interval:>15s} {target:>9s}  {r['verdict']}" + (f" ({r['why']})" if 'why' in r else ''))
    if verdicts['noisy']: print(f"too noisy to judge {', '.join(verdicts['noisy'])}: those verdicts do not count")
    if run['capped']: print(f"stopped at the time cap after {run['seconds'] / 60:.1f} minutes with comparisons undecided")
    print('idle CPU over ' + f'{idle_seconds:g} s, share of one core: ' + ', '.join(f'{k} {v:.2%}' for k, v in idle.items())
          + f" -> {B}: {'PASS' if idle[B] < 0.01 else 'FAIL'} (target < 1%)")


if __name__ == '__main__':
    main()
