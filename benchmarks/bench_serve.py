"""Benchmark: the inference service against the in-process limit and the seed project's pattern, on the same model
file, the same JPEGs and the same cores, in one run.

  (a) in process: decode + letterbox + infer + NMS with `voc_yolo.runtime.Predictor` and `voc_yolo.batching.MicroBatcher`,
      16 threads each with one image in flight, the best of a few stream/thread/batch settings, no HTTP;
  (b) `voc-yolo serve` with those settings, at 1, 4 and 16 concurrent clients;
  (c) the seed pattern, FastAPI calling `ultralytics.YOLO(<same file>).predict` per request (benchmarks/bench_serve_seed.py).
The clients are closed loops (each sends its next request when the last answer arrived) over keep-alive
connections: wrk (benchmarks/post.lua), a C load generator that leaves the cores to the servers, or where wrk is
not installed (or with --client python) one asyncio process, which itself takes about half a core at 300 req/s.
Prints requests/s, p50 and p99 per setup, the ratios at 1 and 16 clients, the in-process latency of one image
alone (back to back, and after the cores idled 2 ms, with the machine's idle policy), and where (b)'s milliseconds
went: the medians of its Server-Timing headers (python client), or the means of its phase histogram in /metrics
(wrk). The ratios are printed twice: of the medians, and paired within each round.
Setups are measured in interleaved rounds (the machine's load drifts) and medians printed.
`--imgsz 640` exports models/best.pt at 640 px (OpenVINO, its default precision) and measures that instead.
Usage: python benchmarks/bench_serve.py [--model models/deploy] [--seconds 8] [--imgsz 640]
"""
import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
PAUSE_S = 0.002  # the idle gap of `single_image_ms`: about what one client's request spends outside the model at 128 px
sys.path.insert(0, str(ROOT/'tests'))
from helpers import free_port, ultralytics_path  # noqa: E402


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
    reqs = [multipart(path, f'{i}.jpg', d) for i, d in enumerate(jpegs)]
    asyncio.run(closed_loop(port, reqs, clients, 1.0))  # warm-up: connections, caches, first compiles
    return asyncio.run(closed_loop(port, reqs, clients, seconds))


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


def load_wrk(port: int, path: str, listing: Path, clients: int, seconds: float, phases: bool) -> dict:
    "`load` with wrk; with `phases`, the mean ms per request of each phase over the run, from /metrics."
    url = f'http://127.0.0.1:{port}{path}'
    run_wrk(url, listing, clients, 1)  # warm-up
    before = phase_sums(port) if phases else {}
    r = run_wrk(url, listing, clients, seconds)
    after = phase_sums(port) if phases else {}
    r['phases'] = {k: (s - before.get(k, (0, 0))[0]) * 1e3 / (n - before.get(k, (0, 0))[1])
                   for k, (s, n) in after.items() if n > before.get(k, (0, 0))[1]}
    return r


def in_process(model: Path, jpegs: list, streams: int, threads: int, max_batch: int, seconds: float, feeders: int = 16) -> dict:
    "Images/s of decode + letterbox + micro-batched inference + NMS, `feeders` threads each with one image in flight, no HTTP."
    from voc_yolo.batching import MicroBatcher
    from voc_yolo.runtime import Predictor, decode_image
    pred = Predictor(model, threads=threads, streams=streams).warmup(); batcher = MicroBatcher(pred, max_batch)
    end, counts = time.perf_counter() + seconds, [0] * feeders
    def work(k):
        i = k
        while time.perf_counter() < end:
            p = pred.prepare(decode_image(jpegs[i % len(jpegs)]))
            batcher.submit(p.x, lambda out, ms, p=p: pred.finish(out, p, ms)).result()
            counts[k] += 1; i += feeders
    t0 = time.perf_counter()
    with ThreadPoolExecutor(feeders) as ex: list(ex.map(work, range(feeders)))
    batcher.close()
    return dict(rps=sum(counts) / (time.perf_counter() - t0), streams=streams, threads=threads, max_batch=max_batch)


def single_image_ms(model: Path, jpegs: list, threads: int, n: int = 300, pause_s: float = 0.0) -> float:
    """Median ms to decode, letterbox, infer and NMS one image alone, in process, on `threads` threads: what one client waits at best.
    `pause_s`: the cores idle that long before each image (untimed), as between one client's requests, which spend about 2 ms
    outside the model at 128 px: where an idle core halts at once (a VM without halt polling), the next image pays to wake it."""
    from voc_yolo.runtime import Predictor, decode_image
    pred, ms = Predictor(model, threads=threads, streams=1).warmup(), []
    for i in range(n):
        if pause_s: time.sleep(pause_s)
        t = time.perf_counter(); pred.predict_one(decode_image(jpegs[i % len(jpegs)])); ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def idle_policy() -> str:
    "How this machine's idle cores wait (Linux cpuidle): the driver, and a KVM guest's halt-polling window where it has one."
    base = Path('/sys/devices/system/cpu/cpuidle')
    driver = (base/'current_driver').read_text().strip() if (base/'current_driver').is_file() else 'not exposed'
    poll = Path('/sys/module/haltpoll/parameters/guest_halt_poll_ns')
    return f"cpuidle driver {driver}" + (f", guest_halt_poll_ns {poll.read_text().strip()}" if poll.is_file() else '')


def wait_ready(url: str, proc, timeout: float = 120):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None: raise SystemExit(f'{url}: the server exited ({proc.returncode})')
        try:
            if requests.get(url, timeout=2).status_code in (200, 405): return
        except requests.ConnectionError: pass
        time.sleep(0.3)
    raise SystemExit(f'{url}: not ready in {timeout} s')


def run_server(cmd: list, ready_url: str, env=None):
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(ready_url, proc)
    return proc


def stop(proc):
    proc.terminate()
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()


def export_640(best: Path) -> Path:
    from voc_yolo.weights import ultralytics_export
    return ultralytics_export(best, ROOT/'runs/bench_serve/640', format='openvino', imgsz=640)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='models/deploy', help='the model to serve (default: the pipeline\'s deployed model)')
    ap.add_argument('--images', default='data/voc_yolo/images/test', help='JPEGs to post')
    ap.add_argument('--seconds', type=float, default=8, help='measured seconds per setup')
    ap.add_argument('--imgsz', type=int, default=0, help='640: export models/best.pt at 640 px and measure that model')
    ap.add_argument('--clients', default='1,4,16', help='concurrent clients for (b) and (c)')
    ap.add_argument('--rounds', type=int, default=3, help='interleaved rounds of every setup (medians are printed)')
    ap.add_argument('--client', choices=('auto', 'wrk', 'python'), default='auto', help='load generator (auto: wrk where installed)')
    a = ap.parse_args()
    client = a.client if a.client != 'auto' else 'wrk' if shutil.which('wrk') else 'python'
    if client == 'wrk' and not shutil.which('wrk'): raise SystemExit('--client wrk: wrk is not installed (make wrk)')
    from voc_yolo.core import offline_setup
    from voc_yolo.runtime import model_metadata, single_threaded_opencv
    offline_setup(); single_threaded_opencv()  # as in `voc-yolo serve`: (a) and the single image run the service's code, minus HTTP
    model = export_640(ROOT/'models/best.pt') if a.imgsz == 640 else ROOT/a.model
    imgsz = model_metadata(model)['imgsz'][0]
    files = sorted((ROOT/a.images).glob('*.jpg'))[:200]
    jpegs = [f.read_bytes() for f in files]
    cores, clients = os.cpu_count(), [int(c) for c in a.clients.split(',')]
    listing = ROOT/'runs/bench_serve/jpegs.txt'; listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(''.join(f'{f}\n' for f in files))
    print(f'model {model}, {len(jpegs)} JPEGs of the test split, {cores} cores, {a.seconds:.0f} s per setup, client: {client}\n')

    configs = [(cores, 1, 1), (cores, 1, 8), (1, cores, 8), (max(1, cores // 2), 2, 8)]  # streams, threads, max_batch
    tried = [in_process(model, jpegs, st, th, mb, a.seconds / 2) for st, th, mb in dict.fromkeys(configs)]
    for r in tried:
        print(f"(a) in process, {r['streams']} streams x {r['threads']} threads, batches up to {r['max_batch']}: {r['rps']:8.1f} images/s")
    best = max(tried, key=lambda r: r['rps'])
    cfg = ['--streams', str(best['streams']), '--threads', str(best['threads']), '--max-batch', str(best['max_batch'])]
    print(f"best: {' '.join(cfg)}; now {a.rounds} interleaved rounds of every setup, medians below\n")

    ports = free_port(), free_port()
    svc = run_server([shutil.which('voc-yolo'), 'serve', '--port', str(ports[0]), '--deploy', str(model),
                      '--models', str(ROOT/'runs/bench_serve/store'), '--max-queue', '256', *cfg],
                     f'http://127.0.0.1:{ports[0]}/ready')
    seed_model = ultralytics_path(model, ROOT/'runs/bench_serve/seed_openvino_model')
    seed = run_server([sys.executable, '-m', 'uvicorn', '--app-dir', str(ROOT/'benchmarks'), 'bench_serve_seed:app',
                       '--port', str(ports[1]), '--log-level', 'warning'], f'http://127.0.0.1:{ports[1]}/docs',
                      env={'SEED_MODEL': str(seed_model), 'SEED_IMGSZ': str(imgsz)})
    for port in ports:  # a first request each: the seed's model compiles on its first predict, which no timing should see
        first = requests.post(f'http://127.0.0.1:{port}/predict/deploy', files={'file': ('0.jpg', jpegs[0])}, timeout=300)
        if first.status_code != 200: raise SystemExit(f'port {port}: {first.status_code} {first.text[:300]}')
    runs = {}
    try:
        for _ in range(a.rounds):
            runs.setdefault('single', []).append(single_image_ms(model, jpegs, cores))
            runs.setdefault('single after a pause', []).append(single_image_ms(model, jpegs, cores, n=150, pause_s=PAUSE_S))
            r = in_process(model, jpegs, best['streams'], best['threads'], best['max_batch'], a.seconds)
            runs.setdefault('(a) in process', []).append(r)
            for c in clients:
                for name, port in (('(b) voc-yolo serve', ports[0]), ('(c) seed: YOLO.predict', ports[1])):
                    r = (load_wrk(port, '/predict/deploy', listing, c, a.seconds, name.startswith('(b)')) if client == 'wrk' else
                         load(port, '/predict/deploy', jpegs, c, a.seconds))
                    runs.setdefault((name, c), []).append(r)
    finally: stop(svc); stop(seed)

    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"{'setup':24s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}   (medians of {a.rounds} rounds)")
    print(f"{'(a) in process':24s} {'-':>7s} {med(runs['(a) in process'], 'rps'):8.1f} {'-':>8s} {'-':>8s} {0:6d}")
    for name in ('(b) voc-yolo serve', '(c) seed: YOLO.predict'):
        for c in clients:
            rs = runs[(name, c)]
            print(f"{name:24s} {c:7d} {med(rs, 'rps'):8.1f} {med(rs, 'p50'):8.2f} {med(rs, 'p99'):8.2f} {sum(r['errors'] for r in rs):6d}")
    print_phases(runs, clients)
    top, one = max(clients), min(clients); A = med(runs['(a) in process'], 'rps')
    B, C = med(runs[('(b) voc-yolo serve', top)], 'rps'), med(runs[('(c) seed: YOLO.predict', top)], 'rps')
    B1, C1 = med(runs[('(b) voc-yolo serve', one)], 'rps'), med(runs[('(c) seed: YOLO.predict', one)], 'rps')
    single, p50 = statistics.median(runs['single']), med(runs[('(b) voc-yolo serve', one)], 'p50')
    errors = {k: sum(r['errors'] for key, rs in runs.items() if key[0].startswith(k) for r in rs) for k in ('(b)', '(c)')}
    print(f"\nin process, one image alone on {cores} threads: {single:.2f} ms; "
          f"(b) p50 at {one} client: {p50:.2f} ms ({p50 - single:+.2f} ms)")
    print(f"in process, one image alone after the cores idled {PAUSE_S * 1e3:.0f} ms: "
          f"{statistics.median(runs['single after a pause']):.2f} ms ({idle_policy()})")
    print(f"at {top} clients: (b)/(a) = {B / A:.2f}, (b)/(c) = {B / C:.2f}; at {one} client: (b)/(c) = {B1 / C1:.2f}; "
          f"errors (b) {errors['(b)']}, (c) {errors['(c)']}")
    print_paired(runs, top, one)


def print_paired(runs: dict, top: int, one: int):
    "The ratios within each round, whose setups ran minutes apart at most: the machine's speed drifts more between rounds."
    b, c = (lambda k: runs[('(b) voc-yolo serve', k)]), (lambda k: runs[('(c) seed: YOLO.predict', k)])
    pairs = {f'(b)/(a) at {top}': zip(b(top), runs['(a) in process']), f'(b)/(c) at {top}': zip(b(top), c(top)),
             f'(b)/(c) at {one}': zip(b(one), c(one))}
    ratios = {k: [x['rps'] / y['rps'] for x, y in v] for k, v in pairs.items()}
    print('paired within each round, median (range): ' + '; '.join(f'{k}: {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})'
                                                                for k, r in ratios.items()))


def print_phases(runs: dict, clients: list):
    "Where (b)'s milliseconds went: the median of each Server-Timing phase, per client count (medians over rounds)."
    rows = {c: [r['phases'] for r in runs[('(b) voc-yolo serve', c)] if r['phases']] for c in clients}
    if not any(rows.values()): return print('\n(b) sent no Server-Timing header')
    names = list(dict.fromkeys(k for rs in rows.values() for r in rs for k in r))
    print(f"\n(b)'s phases (serve.timing), ms per request: medians of Server-Timing (python client) or means from /metrics (wrk)\n"
          f"{'clients':>7s} " + ' '.join(f'{n:>9s}' for n in names))
    for c, rs in rows.items():
        print(f'{c:7d} ' + ' '.join(f"{statistics.median(r.get(n, 0) for r in rs):9.3f}" for n in names))


if __name__ == '__main__':
    main()
