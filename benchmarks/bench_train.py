"""Benchmark: the train stage through DVC + papermill vs the same training through the plain `yolo train` CLI.

In one run, on the same prepared dataset, alternating the two: `dvc repro --force train` in a clean copy of the
repository (papermill starts a kernel, the stage notebook calls voc_yolo.train) and `yolo train` with the very
arguments voc_yolo.train.train_args gives Ultralytics. Prints wall times, medians and the ratio.
Usage: python benchmarks/bench_train.py [--epochs 12] [--repeats 2] [--wandb disabled]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tests'))
from helpers import clean_copy  # noqa: E402 - the tests' clean copy of the repository


def sh(cmd: str, cwd: Path, env=None) -> float:
    "Run `cmd`, fail loudly, return its wall time in seconds."
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode: raise SystemExit(f'`{cmd}` failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}')
    return time.perf_counter() - t


def yolo_cli(repo: Path, out: Path) -> str:
    "The `yolo train` command line equivalent to the stage's run."
    code = ('from voc_yolo.core import offline_setup; offline_setup(); from voc_yolo.train import TrainParams, train_args; '
            'from voc_yolo.core import load_params; import json; '
            "p = load_params('params/train.yaml', TrainParams); "
            f"a = dict(model=p.model, **train_args(p)); a.update(project='{out}', name='plain'); print(json.dumps(a))")
    out = subprocess.run(['python', '-c', code], cwd=repo, capture_output=True, text=True, check=True).stdout
    args = json.loads(out.strip().splitlines()[-1])  # the last line; Ultralytics may log before it
    return 'yolo train ' + ' '.join(f'{k}={v}' for k, v in args.items())


def main(epochs: int, repeats: int, wandb: str):
    with tempfile.TemporaryDirectory() as tmp:
        repo = clean_copy(Path(tmp)/'repo')
        p = yaml.safe_load((repo/'params/train.yaml').read_text()) | dict(epochs=epochs, wandb=wandb)
        (repo/'params/train.yaml').write_text(yaml.safe_dump(p, sort_keys=False))
        sh('dvc repro prepare', repo)  # not timed: both sides train on this dataset
        cli = yolo_cli(repo, Path(tmp)/'plain')
        env = {'YOLO_CONFIG_DIR': str(repo/'.cache/ultralytics'), 'YOLO_OFFLINE': 'true', 'WANDB_MODE': wandb}
        print(f'training: {epochs} epochs, imgsz {p["imgsz"]}, batch {p["batch"]}, wandb {wandb}; {repeats} repeats each\n{cli}\n')
        times = {'yolo train (plain CLI)': [], 'dvc repro train (papermill stage)': []}
        for i in range(repeats):
            for name in (list(times) if i % 2 == 0 else list(times)[::-1]):  # alternate the order against drift
                t = sh(cli, repo, env) if name.startswith('yolo') else sh('dvc repro --force --single-item train', repo)
                times[name].append(t); print(f'  run {i + 1}: {name:36s} {t:7.1f} s', flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items(): print(f'median {k:36s} {v:7.1f} s')
        plain, stage = med.values()
        print(f'overhead ratio (stage / plain): {stage / plain:.3f}x  ({stage - plain:+.1f} s)')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=12, help='epochs per training (12 is about 3 minutes on 2 cores)')
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--wandb', default='disabled', help='W&B mode of the stage (the plain CLI has none)')
    main(**vars(ap.parse_args()))
