#!/usr/bin/env bash
# GPU check: the train stage's training function against plain `yolo train` with the same arguments, on NVIDIA GPUs.
#
# For a machine with an NVIDIA GPU and PyTorch but no internet (a GPU runner, a lent device):
#   1. where pip can download:   make gpu-wheels        # ultralytics, its thop/platform helpers, polars: Python 3.12
#                                                        # wheels at the locked versions, in .whl/ (about 54 MB)
#   2. copy this checkout, .whl/ included, to the GPU machine, and from its root run:
#                                bash tools/gpu_check.sh [EPOCHS]          # default 3
#      Knobs (environment): GPU_CHECK_DEVICE (default 0, or 0,1 when there are two or more GPUs; cpu for a smoke
#      test), IMGSZ (320), BATCH (64), N_TRAIN (2000 synthetic images), REPEATS (2, alternating the order),
#      WORKERS (8), WHEELS (.whl), OUT_DIR (/tmp/gpu_check), PYTHON (python3).
# It installs what is missing from the wheels (no index: nothing is downloaded), generates the synthetic dataset,
# trains EPOCHS epochs through voc_yolo.train.train (the stage's function) and through Ultralytics' own `yolo train` entry point, and
# prints images/s of both and their ratio. The target: the stage at >= 0.97x plain Ultralytics.
# Then (EPOCHS >= 2) it kills the stage's training during a middle epoch (SIGKILL), reruns it, and prints how far the
# resumed run's metrics land from the uninterrupted one's: 0 on the CPU; on a GPU, kernels are not deterministic.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-3}
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
OUT=${OUT_DIR:-/tmp/gpu_check}

# 1. what the PyTorch image lacks, from the carried wheels; voc_yolo itself from this checkout
if ! "$PY" -c "import ultralytics" 2>/dev/null; then
  ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "gpu_check: ultralytics is not installed and $WHEELS/ holds no wheels: run 'make gpu-wheels' where pip can download"; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export YOLO_OFFLINE=true WANDB_MODE=disabled YOLO_AUTOINSTALL=false

N_GPU=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
DEVICE=${GPU_CHECK_DEVICE:-$([ "$N_GPU" -ge 2 ] && echo 0,1 || echo 0)}
if [ "$DEVICE" != cpu ] && [ "$N_GPU" -lt 1 ]; then echo "gpu_check: torch sees no CUDA GPU (set GPU_CHECK_DEVICE=cpu for a smoke test)"; exit 2; fi
"$PY" -c "import torch, ultralytics; print(f'torch {torch.__version__}, ultralytics {ultralytics.__version__},', \
  ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or 'no GPU')"

# 2-4. dataset, both trainings (alternating), images/s and the ratio
"$PY" - "$EPOCHS" "${IMGSZ:-320}" "${BATCH:-64}" "${N_TRAIN:-2000}" "$DEVICE" "${REPEATS:-2}" "${WORKERS:-8}" "$OUT" <<'PYEOF'
import shutil, statistics, subprocess, sys, time
from dataclasses import asdict
from pathlib import Path
epochs, imgsz, batch, n_train, device, repeats, workers, out = sys.argv[1:]
epochs, imgsz, batch, n_train, repeats, workers, out = int(epochs), int(imgsz), int(batch), int(n_train), int(repeats), int(workers), Path(out)
from voc_yolo.prepare import PrepareParams, prepare
from voc_yolo.train import TrainParams, train_args, resolve_model
shutil.rmtree(out/'runs', ignore_errors=True)
t = time.perf_counter()
prepare(PrepareParams(out_dir=f'{out}/ds', dataset_yaml=f'{out}/ds.yaml', source_dir=f'{out}/src', n_train=n_train,
                      n_test=max(n_train // 10, 16), img_size=imgsz, workers=workers, metrics_path=f'{out}/data.json', quality_path=f'{out}/q.json'))
print(f'dataset: {n_train} training images at {imgsz} px in {time.perf_counter() - t:.0f} s', flush=True)
p = TrainParams(dataset_yaml=f'{out}/ds.yaml', epochs=epochs, imgsz=imgsz, batch=batch, workers=workers, device=device, wandb='disabled',
                resume=False, run_dir=f'{out}/runs/stage', weights_path=f'{out}/stage.pt', results_csv=f'{out}/stage.csv', metrics_path=f'{out}/stage.json')
args = {**train_args(p), 'project': f'{out}/runs', 'name': 'plain'}
yolo = [sys.executable, '-c', 'import sys; from ultralytics.cfg import entrypoint; sys.argv[0] = "yolo"; entrypoint()',
        'detect', 'train', f'model={resolve_model(p.model)}', *(f'{k}={v}' for k, v in args.items())]
print('plain:', 'yolo detect train', ' '.join(yolo[6:]), flush=True)

stage = [sys.executable, '-c', f'from voc_yolo.train import TrainParams, train; train(TrainParams(**{asdict(p)!r}))']

def timed(name):  # each in a fresh process, as the stage's papermill kernel is: both pay Python's and CUDA's start-up
    t = time.perf_counter(); subprocess.run(stage if name == 'stage' else yolo, check=True)
    return time.perf_counter() - t

times = {'plain': [], 'stage': []}
for i in range(repeats):
    for name in (('plain', 'stage') if i % 2 == 0 else ('stage', 'plain')):
        times[name].append(timed(name)); print(f'run {i + 1} {name}: {times[name][-1]:.1f} s', flush=True)
ips = {k: n_train * epochs / statistics.median(v) for k, v in times.items()}
print(f'\ndevice {device}, {epochs} epochs x {n_train} images at {imgsz} px, batch {batch}, median of {repeats}:')
for k in ips: print(f'  {k:5s} {ips[k]:8.1f} images/s  (wall {statistics.median(times[k]):.1f} s: {times[k]})')
print(f'ratio stage / plain: {ips["stage"] / ips["plain"]:.3f}x  (target >= 0.97)', flush=True)

# 5. interrupt and resume: killed during the middle epoch, trained again, compared with the uninterrupted stage run
import json, os, signal
if epochs < 2: sys.exit(print('resume check: skipped (it needs EPOCHS >= 2)'))
r = TrainParams(**{**asdict(p), 'resume': True, **{k: f'{out}/resumed{ext}' for k, ext in
                   (('run_dir', ''), ('weights_path', '.pt'), ('results_csv', '.csv'), ('metrics_path', '.json'))}})
resumed = [sys.executable, '-c', f'from voc_yolo.train import TrainParams, train; train(TrainParams(**{asdict(r)!r}))']
proc, middle = subprocess.Popen(resumed, start_new_session=True), epochs // 2
rows, last = Path(r.run_dir)/'results.csv', Path(r.run_dir)/'weights/last.pt'
def checkpointed():  # epoch `middle` has its CSV row, and its last.pt came after it
    return rows.is_file() and len(rows.read_text().splitlines()) > middle and last.is_file() and last.stat().st_mtime >= rows.stat().st_mtime
while not checkpointed():
    if proc.poll() is not None: sys.exit(f'resume check: the training ended (exit code {proc.returncode}) before epoch {middle} was saved')
    time.sleep(0.02)
if proc.poll() is not None: sys.exit(f'resume check: the training finished before it could be killed; use more EPOCHS or N_TRAIN')
os.killpg(proc.pid, signal.SIGKILL); proc.wait()
print(f'resume check: killed during epoch {middle + 1} of {epochs}; training again', flush=True)
subprocess.run(resumed, check=True)
a, b = (json.loads(Path(f).read_text()) for f in (p.metrics_path, r.metrics_path))
for k in a: print(f'  {k:22s} uninterrupted {a[k]:10.6f}  resumed {b[k]:10.6f}  difference {b[k] - a[k]:+.6f}')
print(f'resume check: max |difference| {max(abs(b[k] - a[k]) for k in a):.6f}')
PYEOF
