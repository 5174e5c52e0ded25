"""Benchmark: `voc-yolo serve` with 1 and 2 server processes on one port (--processes, SO_REUSEPORT), the same model,
JPEGs and cores, in one run: wrk with 16 closed-loop clients, interleaved rounds, medians, and the ratio. Each process
runs cores ÷ processes inference streams of one thread, so both setups use the same CPU budget.
Then the capacity model's check: Poisson arrivals at --rate (an open loop, what `voc-yolo capacity` assumes) against
each setup, the measured p50 and p99 beside the p99 that the M/M/c queue fitted to the load test (metrics/serve.json)
predicts at that rate.
Usage: python benchmarks/bench_processes.py [--model models/deploy] [--seconds 5] [--rounds 3] [--clients 16] [--rate 100]
"""
import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))
from bench_serve import multipart, read_answer, run_wrk  # noqa: E402
from voc_yolo.capacity import fit_service_time, response_quantile  # noqa: E402
from voc_yolo.harness import ServiceProcess  # noqa: E402


async def open_loop(port: int, reqs: list, rate: float, seconds: float, seed: int = 0) -> dict:
    "Poisson arrivals at `rate`/s for `seconds`, each sent at its time on an idle keep-alive connection or a new one: p50, p99 ms."
    rng, idle, lat, codes = random.Random(seed), [], [], []

    async def connection():
        while idle:  # the newest idle one; older than 2 s, the server may be closing it (uvicorn's keep-alive is 5 s)
            reader, writer, since = idle.pop()
            if time.perf_counter() - since < 2: return reader, writer
            writer.close()
        return await asyncio.open_connection('127.0.0.1', port)

    async def one(i):
        reader, writer = await connection()
        t = time.perf_counter(); writer.write(reqs[i % len(reqs)])
        head = await read_answer(reader)
        lat.append((time.perf_counter() - t) * 1e3); codes.append(int(head[9:12])); idle.append((reader, writer, time.perf_counter()))
    tasks, t0, at, i = [], time.perf_counter(), 0.0, 0
    while (at := at + rng.expovariate(rate)) < seconds:
        await asyncio.sleep(max(0.0, t0 + at - time.perf_counter())); tasks.append(asyncio.create_task(one(i))); i += 1
    await asyncio.gather(*tasks)
    for _, w, _ in idle: w.close()
    q = statistics.quantiles(lat, n=100)
    return dict(rps=len(lat) / (time.perf_counter() - t0), p50=q[49], p99=q[98], errors=sum(c != 200 for c in codes))


def check_capacity_model(servers: dict, jpegs: list, rate: float, seconds: float, rounds: int, cores: int):
    "The M/M/c queue of `voc-yolo capacity` (c = every stream of the replica) against open-loop measurements at `rate`."
    serve = json.loads((ROOT/'metrics/serve.json').read_text())
    e, c_fit = serve['endpoints']['/predict/deploy'], int(serve['model']['streams'])
    s = fit_service_time(c_fit, e['rps'], e['p50_ms'] / 1e3)
    reqs = [multipart('/predict/deploy', f.name, f.read_bytes()) for f in jpegs]
    rows = {n: [] for n in servers}
    for r in range(rounds):
        for n, srv in servers.items(): rows[n].append(asyncio.run(open_loop(int(srv.url.rsplit(':', 1)[1]), reqs, rate, seconds, r)))
    print(f"\ncapacity model: M/M/c, service time {s * 1e3:.1f} ms fitted to metrics/serve.json ({e['rps']:.1f} req/s, p50 "
          f"{e['p50_ms']:g} ms, {c_fit} streams); Poisson arrivals at {rate:g} req/s, {seconds:g} s x {rounds} rounds, medians")
    print('| processes | streams each | c | req/s | p50 ms | p99 ms measured | p99 ms predicted | errors |\n' + '|---' * 8 + '|')
    for n, rs in rows.items():
        c = n * max(1, cores // n)
        print(f"| {n} | {max(1, cores // n)} | {c} | {statistics.median(r['rps'] for r in rs):.1f} | "
              f"{statistics.median(r['p50'] for r in rs):.2f} | {statistics.median(r['p99'] for r in rs):.2f} | "
              f"{response_quantile(0.99, c, s, rate) * 1e3:.2f} | {sum(r['errors'] for r in rs)} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='models/deploy'); ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--rate', type=float, default=100, help='open-loop arrivals per second for the capacity model check')
    a = ap.parse_args()
    jpegs = sorted((ROOT/'data/voc_yolo/images/test').glob('*.jpg'))[:64]
    listing = ROOT/'runs/bench_processes_jpegs.txt'; listing.parent.mkdir(exist_ok=True)
    listing.write_text('\n'.join(map(str, jpegs)) + '\n')
    cores, rows = os.cpu_count() or 1, {1: [], 2: []}
    servers = {n: ServiceProcess(ROOT/f'runs/bench_processes_{n}.log', flags=(
        '--deploy', a.model, '--models', str(ROOT/f'runs/bench_processes_store{n}'), '--processes', str(n), '--threads', '1',
        '--streams', str(max(1, cores // n)), '--poll-s', '0')) for n in rows}
    try:
        for s in servers.values(): s.start().wait_ready()
        for s in servers.values(): run_wrk(f"{s.url}/predict/deploy", listing, a.clients, 1)  # warm-up
        for _ in range(a.rounds):
            for n, s in servers.items(): rows[n].append(run_wrk(f'{s.url}/predict/deploy', listing, a.clients, a.seconds))
        report_closed_loop(rows, a.clients, cores)
        check_capacity_model(servers, jpegs, a.rate, 2 * a.seconds, a.rounds, cores)
    finally:
        for s in servers.values(): s.stop()


def report_closed_loop(rows: dict, clients: int, cores: int):
    print('| processes | streams each | req/s (rounds) | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|')
    med = {}
    for n, rs in rows.items():
        med[n] = statistics.median(r['rps'] for r in rs)
        each = ', '.join(f"{r['rps']:.0f}" for r in rs)
        print(f"| {n} | {max(1, cores // n)} | {med[n]:.1f} ({each}) | "
              f"{statistics.median(r['p50'] for r in rs):.2f} | {statistics.median(r['p99'] for r in rs):.2f} | "
              f"{sum(r['errors'] for r in rs)} |")
    print(f'2 processes / 1 process: {med[2] / med[1]:.2f}x requests/s ({clients} clients, {cores} cores)')


if __name__ == '__main__':
    main()
