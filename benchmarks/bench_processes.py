"""Benchmark: `voc-yolo serve` with 1 and 2 server processes on one port (--processes, SO_REUSEPORT), the same model,
JPEGs and cores, in one run: wrk with 16 closed-loop clients, interleaved rounds, medians, and the ratio. Each process
runs cores ÷ processes inference streams of one thread, so both setups use the same CPU budget.
Usage: python benchmarks/bench_processes.py [--model models/deploy] [--seconds 5] [--rounds 3] [--clients 16]
"""
import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'benchmarks'))
from bench_serve import run_wrk  # noqa: E402
from voc_yolo.harness import ServiceProcess  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='models/deploy'); ap.add_argument('--seconds', type=float, default=5)
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--clients', type=int, default=16)
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
    finally:
        for s in servers.values(): s.stop()
    print('| processes | streams each | req/s (rounds) | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|')
    med = {}
    for n, rs in rows.items():
        med[n] = statistics.median(r['rps'] for r in rs)
        each = ', '.join(f"{r['rps']:.0f}" for r in rs)
        print(f"| {n} | {max(1, cores // n)} | {med[n]:.1f} ({each}) | "
              f"{statistics.median(r['p50'] for r in rs):.2f} | {statistics.median(r['p99'] for r in rs):.2f} | "
              f"{sum(r['errors'] for r in rs)} |")
    print(f'2 processes / 1 process: {med[2] / med[1]:.2f}x requests/s ({a.clients} clients, {cores} cores)')


if __name__ == '__main__':
    main()
