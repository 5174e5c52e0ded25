"""Hostile clients against a live `voc-yolo serve`: one request per attack (`battery`), or minutes of valid traffic
with every attack in rotation (`soak`).

battery: each case runs alone; the server's peak RSS over the case (VmHWM, reset before it through
         /proc/<pid>/clear_refs) and the worst /health latency while it runs (polled every 20 ms) are printed
         next to the answer.
soak:    `--clients` closed-loop clients post valid JPEGs while one attacker cycles through the battery; the RSS is
         sampled every second and /health polled throughout. Targets: no failed valid request, RSS at the end within
         +15% of its value after the warm-up (the first `--warmup` seconds), /health p99 under 100 ms.

The service is configured through VOC_YOLO_* variables only, so `--pythonpath` can point it at another checkout
of the library (an older commit, to measure "before").
Usage: python benchmarks/hostile.py battery [--json out.json]
       python benchmarks/hostile.py soak --seconds 300 [--json out.json]
"""
import argparse
import io
import json
import socket
import statistics
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TOKEN = 'hostile-token'
SETTINGS = dict(VOC_YOLO_TOKEN=TOKEN, VOC_YOLO_MAX_PIXELS='4000000', VOC_YOLO_MAX_REQUEST_PIXELS='8000000', VOC_YOLO_DECODE_THREADS='2',
                VOC_YOLO_HEADER_TIMEOUT_S='2', VOC_YOLO_BODY_TIMEOUT_S='2')


# ---- what the attacks send -------------------------------------------------------------------------------------------
def png(w, h):
    b = io.BytesIO(); Image.new('RGB', (w, h)).save(b, 'PNG'); return b.getvalue()


def tiff_tile_bomb(tile=8192):
    "A TIFF declaring 16×16 pixels whose one deflated tile is tile×tile (a decoder allocates the whole tile)."
    data = zlib.compress(bytes(tile * tile), 9)
    short = lambda tag, v: struct.pack('<HHIHH', tag, 3, 1, v, 0)
    long_ = lambda tag, v: struct.pack('<HHII', tag, 4, 1, v)
    n = 10; offset = 8 + 2 + 12 * n + 4
    tags = [short(256, 16), short(257, 16), short(258, 8), short(259, 8), short(262, 1), short(277, 1),
            long_(322, tile), long_(323, tile), long_(324, offset), long_(325, len(data))]
    return b'II*\x00' + struct.pack('<I', 8) + struct.pack('<H', n) + b''.join(tags) + struct.pack('<I', 0) + data


def many_parts(n=100_000):
    b = 'many'
    body = b''.join(f'--{b}\r\nContent-Disposition: form-data; name="f"\r\n\r\nz\r\n'.encode() for _ in range(n)) + f'--{b}--\r\n'.encode()
    return body, f'multipart/form-data; boundary={b}'


YAML_LAUGHS = ('a: &a [' + ','.join(['x'] * 10) + ']\n'
               + ''.join(f'{c}: &{c} [' + ','.join([f'*{p}'] * 10) + ']\n' for p, c in zip('abcdef', 'bcdefg'))
               + 'imgsz: [64, 64]\nnames: {0: *g}\n')  # 10^7 items once the name is read as text


def answer(r):
    try: detail = r.json().get('detail', '')
    except ValueError: detail = r.text[:200]
    return dict(status=r.status_code, detail=str(detail)[:160])


def post(url, path='/predict/deploy', **kw):
    return answer(requests.post(url + path, timeout=60, **kw))


def upload(url, files, name='mine', token=TOKEN):
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    return post(url, '/upload', data={'name': name}, files=[('file', f) for f in files], headers=headers)


def slow_headers(url):
    "Send a request line and one header, then nothing: how long until the server closes the connection."
    host, port = url.split('//')[1].split(':')
    s = socket.create_connection((host, int(port))); s.settimeout(15); t = time.perf_counter()
    s.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n')
    try: got = s.recv(100)
    except TimeoutError: return dict(status='open after 15 s', detail='the connection was held')
    finally: s.close()
    return dict(status=f'closed after {time.perf_counter() - t:.1f} s', detail=got.decode(errors='replace')[:40])


def read_answer(sock):
    "Everything the server sends until it closes the connection (an answer may come in several segments)."
    chunks = []
    while chunk := sock.recv(4096): chunks.append(chunk)
    return b''.join(chunks).decode(errors='replace')


def slow_body(url):
    "Announce a 1000-byte body, send 10 bytes, then nothing."
    host, port = url.split('//')[1].split(':')
    s = socket.create_connection((host, int(port))); s.settimeout(15); t = time.perf_counter()
    s.sendall(b'POST /predict/deploy HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n'
              b'Content-Length: 1000\r\n\r\n--b\r\nConte')
    try: got = read_answer(s)
    except TimeoutError: return dict(status='no answer after 15 s', detail='the request was held')
    finally: s.close()
    status = got.split(' ')[1] if got.startswith('HTTP/') else 'closed'
    detail = f'after {time.perf_counter() - t:.1f} s: ' + got.split('\r\n\r\n')[-1]
    return dict(status=int(status) if status.isdigit() else status, detail=detail)


def onnx_with(onnx_file, **meta):
    "The model with its metadata changed (e.g. imgsz)."
    import onnx
    m = onnx.load(str(onnx_file))
    props = {p.key: p.value for p in m.metadata_props} | {k: str(v) for k, v in meta.items()}
    del m.metadata_props[:]
    for k, v in props.items(): m.metadata_props.add(key=k, value=v)
    return m.SerializeToString()


def cases(onnx_file, ir_dir):
    "The battery: (case number of the issue, name, what it sends), each a function of the service's URL."
    onnx_bytes = Path(onnx_file).read_bytes()
    xml, bin_ = next(Path(ir_dir).glob('*.xml')), next(Path(ir_dir).glob('*.bin'))
    body, ct = many_parts()
    return [
        ('1', 'TIFF tile bomb (63 KB, declares 16×16)', lambda u: post(u, files={'file': ('t.tif', tiff_tile_bomb())})),
        ('2', '64 tiny images in one request', lambda u: post(u, files=[('file', (f'{i}.png', png(8, 8))) for i in range(64)])),
        ('2', '3 near-limit images (11.7 Mpx)', lambda u: post(u, files=[('file', (f'{i}.png', png(2000, 1950))) for i in range(3)])),
        ('3', '100,000 multipart parts', lambda u: post(u, data=body, headers={'Content-Type': ct})),
        ('4', 'anonymous upload of 1,001 files', lambda u: upload(u, [(f'{i}.onnx', b'x') for i in range(1001)], token=None)),
        ('5', 'NUL in an upload file name', lambda u: upload(u, [('m\x00.onnx', onnx_bytes)])),
        ('6', 'model name ending in a newline', lambda u: upload(u, [('m.onnx', onnx_bytes)], name='mine\n')),
        ('7', 'headers that never end', slow_headers),
        ('7', 'a body that never ends', slow_body),
        ('8', 'YAML alias bomb in metadata.yaml', lambda u: upload(u, [('m.xml', xml.read_bytes()), ('m.bin', bin_.read_bytes()),
                                                                       ('metadata.yaml', YAML_LAUGHS.encode())])),
        ('10', 'ONNX named model.xml', lambda u: upload(u, [('model.xml', onnx_bytes), ('model.bin', b'\0' * 16)])),
        ('10', 'imgsz 100000 in the metadata', lambda u: upload(u, [('m.onnx', onnx_with(onnx_file, imgsz=[100_000, 100_000]))])),
    ]


# ---- what is measured --------------------------------------------------------------------------------------------
def memory_kb(pid, key):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'): return int(line.split()[1])
    raise KeyError(key)


class HealthWatch(threading.Thread):
    "GET /health every `every` seconds on its own connection; every latency (ms) in `.ms`, a failed call counts as its timeout."
    def __init__(self, url, every=0.02, timeout=10):
        super().__init__(daemon=True); self.url, self.every, self.timeout, self.ms, self.stop = url, every, timeout, [], threading.Event()

    def run(self):
        with requests.Session() as s:
            while not self.stop.is_set():
                t = time.perf_counter()
                try: ok = s.get(self.url + '/health', timeout=self.timeout).status_code == 200
                except requests.RequestException: ok = False
                self.ms.append((time.perf_counter() - t) * 1e3 if ok else self.timeout * 1e3)
                self.stop.wait(self.every)

    def __enter__(self): self.start(); return self
    def __exit__(self, *exc): self.stop.set(); self.join()


def measure(svc, attack):
    "One attack: its answer, the server's peak RSS over it above the RSS before it, the worst /health latency meanwhile."
    pid = svc.proc.pid
    Path(f'/proc/{pid}/clear_refs').write_text('5')  # reset the peak (VmHWM) to the current RSS
    base = memory_kb(pid, 'VmRSS')
    with HealthWatch(svc.url) as hw:
        time.sleep(0.1); out = attack(svc.url); time.sleep(0.1)
    return dict(out, rss_peak_mb=round((memory_kb(pid, 'VmHWM') - base) / 1024, 1), health_worst_ms=round(max(hw.ms), 1),
                alive=requests.get(svc.url + '/health', timeout=10).status_code == 200)


def service(args, tmp):
    sys.path.insert(0, str(ROOT))
    from voc_yolo.harness import ServiceProcess
    env = dict(SETTINGS, VOC_YOLO_DEPLOY=str(args.deploy), VOC_YOLO_MODELS=str(tmp/'store'))
    first = ''  # another checkout: ahead of the editable install's import hook, which would otherwise win over sys.path
    if args.pythonpath:
        first = (f"sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
                 f"sys.path.insert(0, {str(Path(args.pythonpath).resolve())!r}); ")
    code = f'import sys; {first}from voc_yolo.cli import main; sys.exit(main())'
    return ServiceProcess(tmp/'serve.log', env=env, command=[sys.executable, '-c', code])


def battery(args, tmp):
    with service(args, tmp) as svc:
        svc.wait_ready()
        rows = [dict(case=n, attack=name, **measure(svc, fn)) for n, name, fn in cases(args.onnx, args.ir)]
    print(f"\n{'#':>3} {'attack':38s} {'answer':>20s} {'peak RSS +MB':>13s} {'/health worst ms':>17s}  detail")
    for r in rows:
        print(f"{r['case']:>3} {r['attack']:38s} {str(r['status']):>20s} {r['rss_peak_mb']:13.1f} {r['health_worst_ms']:17.1f}  "
              f"{r['detail'][:90]!r}")
    return dict(settings=SETTINGS, cases=rows)


def soak(args, tmp):
    jpgs = [p.read_bytes() for p in sorted(Path(args.images).glob('*.jpg'))[:32]]
    if not jpgs: raise SystemExit(f'{args.images}: no JPEGs to send')
    with service(args, tmp) as svc:
        svc.wait_ready(); stop, valid, attacks, rss = threading.Event(), [], [], []

        def client(i):
            with requests.Session() as s:
                while not stop.is_set():
                    r = s.post(svc.url + '/predict/deploy', files={'file': ('a.jpg', jpgs[i % len(jpgs)])}, timeout=30)
                    valid.append(r.status_code); i += 1

        def attacker():
            battery_ = cases(args.onnx, args.ir); i = 0
            while not stop.is_set():
                n, name, fn = battery_[i % len(battery_)]; attacks.append((name, fn(svc.url)['status'])); i += 1

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        threads.append(threading.Thread(target=attacker, daemon=True))
        t0 = time.monotonic()
        with HealthWatch(svc.url, every=0.05) as hw:
            for t in threads: t.start()
            while time.monotonic() - t0 < args.seconds:
                time.sleep(1); rss.append((round(time.monotonic() - t0, 1), memory_kb(svc.proc.pid, 'VmRSS') / 1024))
            stop.set()
            for t in threads: t.join(60)
    after_warmup = next(m for s, m in rss if s >= args.warmup) if args.seconds > args.warmup else rss[0][1]
    p99 = float(np.percentile(hw.ms, 99))
    out = dict(seconds=args.seconds, clients=args.clients, valid_requests=len(valid), valid_failed=sum(s != 200 for s in valid),
               attacks=len(attacks), attack_statuses=sorted({str(s) for _, s in attacks}), rss_after_warmup_mb=round(after_warmup, 1),
               rss_end_mb=round(rss[-1][1], 1), rss_growth=round(rss[-1][1] / after_warmup - 1, 4), health_p99_ms=round(p99, 1),
               health_median_ms=round(statistics.median(hw.ms), 1), health_worst_ms=round(max(hw.ms), 1), rss_mb=rss)
    out['targets_met'] = out['valid_failed'] == 0 and out['rss_growth'] <= 0.15 and p99 < 100
    print(f"\nsoak of {args.seconds} s: {out['valid_requests']} valid requests ({out['valid_failed']} failed), {out['attacks']} attacks "
          f"answered {out['attack_statuses']}; RSS {out['rss_after_warmup_mb']} MB after {args.warmup} s -> {out['rss_end_mb']} MB "
          f"({out['rss_growth']:+.1%}); /health p50 {out['health_median_ms']} ms, p99 {out['health_p99_ms']} ms, worst "
          f"{out['health_worst_ms']} ms; targets met: {out['targets_met']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('mode', choices=['battery', 'soak'])
    ap.add_argument('--deploy', default=ROOT/'models/deploy', type=Path, help='the model to serve')
    ap.add_argument('--onnx', default=ROOT/'runs/quantize/onnx/best.onnx', type=Path, help='an ONNX export to upload')
    ap.add_argument('--ir', default=ROOT/'runs/quantize/openvino_fp32/best_openvino_model', type=Path, help='an OpenVINO IR folder')
    ap.add_argument('--images', default=ROOT/'data/voc_yolo/images/test', type=Path, help='JPEGs for the valid traffic (soak)')
    ap.add_argument('--seconds', type=float, default=300, help='soak duration')
    ap.add_argument('--warmup', type=float, default=60, help='soak: the RSS is compared with its value at this second')
    ap.add_argument('--clients', type=int, default=4, help='soak: concurrent valid clients')
    ap.add_argument('--pythonpath', help='serve the voc_yolo of this checkout instead')
    ap.add_argument('--json', type=Path, help='write the results here')
    ap.add_argument('--tmp', type=Path, default=ROOT/'runs/hostile', help='the store and the service log')
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    out = (battery if args.mode == 'battery' else soak)(args, args.tmp)
    if args.json: args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0 if args.mode == 'battery' or out['targets_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
