"Helpers the tests and the benchmarks share: the repository, shell runs, clean copies, tiny params, request bodies, kills."
import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unmeasured(env=None):
    """`env` (default: this process's) without coverage's subprocess switch. For runs that repeat stage code the tiny
    pipeline and the notebook tests already measure: tracing doubles a tiny stage's wall time and adds no line."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k != 'COVERAGE_PROCESS_CONFIG'}


def run(cmd, cwd, check=True, measured=True, **kw):
    "Run a shell command the way a user types it; on failure show its output. `measured=False`: see `unmeasured`."
    if not measured: kw['env'] = unmeasured(kw.get('env'))
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise AssertionError(f"`{cmd}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def clean_copy(dst):
    "A fresh git + DVC repository at `dst` holding the tracked files of this one (what a clean clone has)."
    ls = ['git', 'ls-files', '-co', '--exclude-standard']
    files = subprocess.run(ls, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT/f).is_file():
            (dst/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/f, dst/f)
    run('git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm init', dst)
    return dst


TINY = {'prepare': dict(n_train=24, n_test=8, img_size=96, workers=1),
        'train': dict(epochs=2, imgsz=64, batch=8, workers=1, wandb='disabled',  # 2 epochs: a kill after the first resumes
                      extra={'close_mosaic': 1}),  # mosaic in epoch 1 (the default closes it 10 epochs before the end)
        'evaluate': dict(pred_conf=0.01),  # imgsz: from the weights (trained at 64)
        'profile': dict(batch_sizes=[1, 2], warmup=1, repeats=3),
        'quantize': dict(calib_images=8, warmup=1, repeats=3, accuracy_budget=1.0),
        'loadtest': dict(users=4, spawn_rate=4, run_time=4, upload_every=1.5)}


def tiny_pipeline(repo):
    "Shrink every stage's params for a test run, and commit them."
    import yaml
    for name, kw in TINY.items():
        f = repo/f'params/{name}.yaml'
        f.write_text(yaml.safe_dump(yaml.safe_load(f.read_text()) | kw, sort_keys=False))
    run('git add -A && git -c user.email=t@t -c user.name=t commit -qm tiny', repo)


def wait_until(condition, proc, what, timeout=600):
    "Poll `condition()` every 20 ms while `proc` runs; fail saying `what` was awaited if it ends or `timeout` passes first."
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f'the process ended (exit code {proc.returncode}) before {what}'
        assert time.time() < end, f'{what}: not within {timeout} s'
        time.sleep(0.02)


def epoch_started(run_dir, epoch):
    "Whether the training in Ultralytics' `run_dir` is inside `epoch` (from 1): past its first batch, or past the checkpoint before it."
    if epoch == 1: return (run_dir/'train_batch0.jpg').is_file()  # Ultralytics plots the first batches as they pass
    weights = run_dir/'weights'  # the state of epoch - 1 alone: last.pt of epoch - 1 is written (the older state went after it)
    return [f.name for f in weights.glob('resume_state_*.pt')] == [f'resume_state_{epoch - 2}.pt'] and (weights/'last.pt').is_file()


def kill_tree(proc):
    "SIGKILL a process and every descendant (Jupyter kernels start their own session, dataloader workers), as a power cut would."
    import psutil
    top = psutil.Process(proc.pid)
    for q in [top, *top.children(recursive=True)]:
        try: q.kill()
        except psutil.NoSuchProcess: pass
    proc.wait()


def ultralytics_path(model: Path, dst: Path) -> Path:
    "The same model where Ultralytics recognises it: the .onnx file, or a copy of the IR in `dst` (named *_openvino_model)."
    from voc_yolo.runtime import model_file
    f = model_file(model)
    if f.suffix == '.onnx' or f.parent.name.endswith('_openvino_model'): return f if f.suffix == '.onnx' else f.parent
    shutil.rmtree(dst, ignore_errors=True); shutil.copytree(f.parent, dst)
    return dst


# a local S3 (moto's server, the conftest fixture `s3`): its credentials and bucket
S3_ENV = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1'}
BUCKET = 'voc-yolo'


def publish(tiny_run, dst, remote_cmd):
    "A copy of the tiny pipeline's repository with its results committed and a remote set as the default (in Git)."
    top = str(tiny_run['repo'])  # Ultralytics' scratch runs/ stays behind (.dvc/cache/runs, the run-cache, comes along)
    shutil.copytree(top, dst, symlinks=True, ignore=lambda d, names: ['runs'] if d == top else [])
    shutil.rmtree(dst/'.dvc/tmp', ignore_errors=True)
    run('git config user.email t@t && git config user.name t && git add -A && git commit -qm results', dst)
    run(f'{remote_cmd} && git commit -q --allow-empty -am "DVC remote"', dst)
    return dst


from voc_yolo.harness import free_port  # noqa: E402,F401 - the library's helper, for the tests' own servers


def metric(server, line_start:str)->float:
    "The value of the first line of a running service's /metrics that starts with `line_start` (0 when there is none)."
    import requests
    lines = [ln for ln in requests.get(f'{server.url}/metrics', timeout=10).text.splitlines() if ln.startswith(line_start)]
    return float(lines[0].rsplit(' ', 1)[1]) if lines else 0.0
