"The train and evaluate stages: W&B offline runs, determinism, exact resume after a kill, bad input, and the GPU check script on the CPU."
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import ROOT, epoch_started, kill_tree, run, wait_until


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    "A prepared 48 + 8 image synthetic dataset at 96 px; returns its dataset yaml."
    from voc_yolo.prepare import PrepareParams, prepare
    d = tmp_path_factory.mktemp('data')
    prepare(PrepareParams(out_dir=f'{d}/ds', dataset_yaml=f'{d}/ds.yaml', source_dir=f'{d}/src', n_train=48, n_test=8,
                          img_size=96, workers=1, metrics_path=f'{d}/data.json', quality_path=f'{d}/q.json'))
    return d/'ds.yaml'


def tiny_params(data, out, **kw):
    "TrainParams for a 64 px run writing everything under `out`."
    return dict(dataset_yaml=str(data), epochs=1, imgsz=64, batch=8, workers=2, wandb='disabled', run_dir=f'{out}/runs/train',
                weights_path=f'{out}/best.pt', results_csv=f'{out}/results.csv', metrics_path=f'{out}/train.json') | kw


def train_process(params, env=None):
    "Start the training the stage runs, in its own process (group), as the notebook would."
    code = f"from voc_yolo.train import TrainParams, train; train(TrainParams(**{params!r}))"
    return subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})


RESUMED = dict(epochs=3, extra={'close_mosaic': 1})  # mosaic in epochs 1 and 2, closed in 3: a resume must close it too


@pytest.fixture(scope='module')
def uninterrupted(tiny_data, tmp_path_factory):
    "The outputs of a 3-epoch run that nothing interrupted: what every killed and resumed run must reproduce."
    out = tmp_path_factory.mktemp('uninterrupted')
    p = train_process(tiny_params(tiny_data, out, **RESUMED))
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log[-3000:]
    return out


def checkpoint(f):
    from voc_yolo.core import offline_setup
    offline_setup()  # unpickling a checkpoint imports Ultralytics here: after offline_setup, as everywhere in the project
    import torch
    return torch.load(f, map_location='cpu', weights_only=False)


def best_weights(f): return checkpoint(f)['model'].state_dict()


def killed_during(epoch, params, env, run_dir):
    "Start the training, SIGKILL it once `epoch` has started, and check that it had finished the epochs before it."
    p = train_process(params, env)
    wait_until(lambda: epoch_started(run_dir, epoch), p, f'epoch {epoch} started')
    time.sleep(0.2); kill_tree(p)
    last = run_dir/'weights/last.pt'
    done = checkpoint(last)['epoch'] + 1 if last.is_file() else 0
    assert done == epoch - 1, f'killed after {done} epochs, not during epoch {epoch}'


def test_a_run_killed_during_each_epoch_resumes_to_the_same_bytes(uninterrupted, tiny_data, tmp_path):
    """SIGKILL during the first, then the middle, then the last of 3 epochs, training again after each kill: the run that
    finishes equals the uninterrupted one, byte for byte. Killed in the first epoch there is no checkpoint: the next start
    begins again, which also shows that two runs with the same seed give the same bytes. Killed later, it resumes, mosaic
    closed again in the last epoch. The run logs to W&B (offline) throughout."""
    import torch
    params, run_dir = tiny_params(tiny_data, tmp_path, **RESUMED, wandb='offline'), tmp_path/'runs/train'
    env = {'WANDB_DIR': str(tmp_path/'wb')}
    for epoch in (1, 2, 3): killed_during(epoch, params, env, run_dir)
    p = train_process(params, env)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log[-3000:]
    assert 'resuming the interrupted run' in log and 'exact resume: restored resume_state_' in log, log[-3000:]
    for f in ('results.csv', 'train.json'):
        assert (tmp_path/f).read_bytes() == (uninterrupted/f).read_bytes(), f
    a, b = best_weights(tmp_path/'best.pt'), best_weights(uninterrupted/'best.pt')  # best.pt also holds the date it was written
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'best.pt weights differ'
    assert not list((run_dir/'weights').glob('resume_state_*')), 'a finished run keeps no resume state'
    # W&B: the resumed processes continue one run, and the epochs are logged once, by the process that finished
    runs = sorted((tmp_path/'wb/wandb').glob('offline-run-*'), key=lambda r: r.stat().st_mtime)
    assert len(runs) == 4 and len({r.name.rsplit('-', 1)[1] for r in runs[1:]}) == 1, runs
    logs = [next(r.glob('run-*.wandb')).read_bytes() for r in runs]  # W&B's transaction logs: what `wandb sync` uploads
    assert [b'train/box_loss' in x for x in logs] == [False, False, False, True]
    # the config (every param, and the arguments Ultralytics got), per-epoch metrics, and the weights artifact
    for key in (b'wandb_project', b'weights_path', b'"imgsz":64', b'metrics/mAP50(B)', b'train/box_loss', b'lr/pg0',
                b'train-model', b'best.pt'):
        assert key in logs[-1], key
    assert 'wandb sync' in (ROOT/'README.md').read_text()


def test_bad_input_gives_one_clear_paragraph(tiny_data, tmp_path):
    from voc_yolo.core import ParamsError
    from voc_yolo.train import TrainParams, train
    cases = {'device': ('0', "asks for CUDA GPU(s) 0, but this machine has 0"),
             'model': ('yolov8s.pt', "needs the internet"),
             'dataset_yaml': (str(tmp_path/'nope.yaml'), "run the prepare stage first")}
    for key, (value, msg) in cases.items():
        if key == 'device' and __import__('torch').cuda.is_available(): continue
        with pytest.raises((ParamsError, FileNotFoundError), match=re.escape(msg)):
            train(TrainParams(**tiny_params(tiny_data, tmp_path, **{key: value})))
    assert not (tmp_path/'runs').exists(), 'nothing starts before the params are checked'


def test_stage_notebook_rejects_a_wrongly_typed_parameter(repo_copy):
    r = run('papermill nbs/stages/train.ipynb out.ipynb -f params/train.yaml -p epochs many', repo_copy, check=False)
    assert r.returncode != 0 and "key 'epochs' must be int, got str 'many'" in r.stdout + r.stderr


def test_the_gpu_check_script_runs_end_to_end_on_the_cpu(tmp_path):
    "tools/gpu_check.sh is for a GPU machine; its whole path (dataset, stage function, plain yolo train, ratio) runs here at tiny size."
    env = {**os.environ, 'GPU_CHECK_DEVICE': 'cpu', 'IMGSZ': '64', 'BATCH': '8', 'N_TRAIN': '16', 'REPEATS': '1', 'WORKERS': '1',
           'OUT_DIR': str(tmp_path)}
    r = run('bash tools/gpu_check.sh 2', ROOT, env=env, measured=False)
    assert re.search(r'ratio stage / plain: \d+\.\d+x', r.stdout), r.stdout[-2000:]
    for line in ('resume check: killed during epoch 2 of 2', 'resume check: max |difference| 0.000000'):  # exact on the CPU
        assert line in r.stdout, r.stdout[-2000:]
    assert (tmp_path/'runs/stage/weights/best.pt').is_file() and (tmp_path/'runs/plain/weights/best.pt').is_file()
