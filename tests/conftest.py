"Shared fixtures: the repository, a throwaway copy of it, and a small synthetic VOCdevkit."
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('WANDB_MODE', 'disabled')  # no W&B in tests unless the test is about W&B (nbs/design.ipynb)
os.environ['YOLO_AUTOINSTALL'] = 'false'  # no run-time pip installs from Ultralytics in any test process (offline_setup sets it too)


def run(cmd, cwd, check=True, **kw):
    "Run a shell command the way a user types it; on failure show its output."
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


@pytest.fixture
def repo_copy(tmp_path):
    "A clean copy of the repository for one test."
    return clean_copy(tmp_path/'repo')


TINY = {'data': dict(n_train=24, n_test=8, img_size=96, workers=1),
        'train': dict(epochs=1, imgsz=64, batch=8, workers=1, wandb='disabled'),
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


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    "A clean copy that has run the whole pipeline (`dvc repro`) on tiny params. Tests read it; one that reruns a stage copies it first."
    import time
    repo = clean_copy(tmp_path_factory.mktemp('tiny')/'repo')
    tiny_pipeline(repo)
    t = time.perf_counter(); out = run('dvc repro', repo).stdout
    return dict(repo=repo, seconds=time.perf_counter() - t, log=out)


@pytest.fixture(scope='session')
def small_devkit(tmp_path_factory):
    "A 12 + 6 image synthetic VOCdevkit (read-only: copy it before changing it)."
    from voc_yolo.synthetic import make_synthetic_voc
    return make_synthetic_voc(tmp_path_factory.mktemp('devkit'), n_train=12, n_test=6, img_size=96, seed=3, workers=1)


from voc_yolo.harness import free_port  # noqa: E402,F401 - one helper for the library's service processes and the tests


CHROMIUM, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')


@pytest.fixture(scope='session')
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail('chromium and chromedriver are needed: `make browser` (or apt-get install -y chromium chromium-driver)')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions(); opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,900',
              '--proxy-server=127.0.0.1:9'):  # no network: a fetch beyond loopback (which bypasses proxies) fails loudly
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield d
    d.quit()
