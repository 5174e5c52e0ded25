"""Benchmark: what exact resume costs per epoch. Ultralytics' own DetectionTrainer against voc_yolo's ExactResumeTrainer
(a fresh seed and dataloader workers every epoch, a full-precision resume state written next to last.pt), on the
pipeline's prepared dataset and train params, alternating the two, each in a fresh process, in one run.
Prints each run's seconds per epoch (from Ultralytics' results.csv), the medians, the extra seconds per epoch and the
ratio, and the size of one resume state.
Usage: python benchmarks/bench_resume.py [--epochs 3] [--repeats 2]
"""
import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = '''import json, sys
from voc_yolo.core import load_params, offline_setup
offline_setup(wandb_mode='disabled')
from ultralytics import YOLO
from voc_yolo.train import TrainParams, train_args, resolve_model
from voc_yolo.resume import ExactResumeTrainer
kind, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = load_params('params/train.yaml', TrainParams)
args = {**train_args(p), 'epochs': epochs, 'project': out, 'name': kind, 'plots': False}
trainer = ExactResumeTrainer if kind == 'exact' else None
m = YOLO(resolve_model(p.model))
if kind == 'exact': m.add_callback('on_train_epoch_end', lambda t: json.dump(
    {'state_mb': sum(f.stat().st_size for f in t.wdir.glob('resume_state_*.pt')) / 2**20}, open(f'{out}/state.json', 'w')))
m.train(trainer=trainer, **args)
'''


def seconds_per_epoch(out: Path, kind: str) -> float:
    "Ultralytics' cumulative `time` column: the last epoch's value over the number of epochs (training and validation)."
    rows = list(csv.DictReader(open(out/kind/'results.csv')))
    return float(rows[-1]['time']) / len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    if not (ROOT/'data/voc_yolo.yaml').is_file(): raise SystemExit('run the prepare stage first: dvc repro prepare')
    times = {'plain': [], 'exact': []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for kind in (('plain', 'exact') if i % 2 == 0 else ('exact', 'plain')):
                out = Path(tmp)/f'{i}'
                subprocess.run([sys.executable, '-c', CHILD, kind, str(out), str(a.epochs)], cwd=ROOT, check=True, capture_output=True)
                times[kind].append(seconds_per_epoch(out, kind))
                print(f'run {i + 1} {kind}: {times[kind][-1]:.2f} s/epoch', flush=True)
        state_mb = json.loads((Path(tmp)/'0/state.json').read_text())['state_mb']
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{a.epochs} epochs, median of {a.repeats}: Ultralytics' trainer {med['plain']:.2f} s/epoch, "
          f"exact resume {med['exact']:.2f} s/epoch")
    print(f"exact resume costs {med['exact'] - med['plain']:+.2f} s/epoch ({med['exact'] / med['plain']:.3f}x); "
          f"one resume state: {state_mb:.1f} MB")


if __name__ == '__main__':
    main()
