"Shared fixtures: a throwaway copy of the repository, the tiny pipeline run, a small synthetic VOCdevkit, a browser (helpers: helpers.py)."
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import BUCKET, S3_ENV, clean_copy, free_port, tiny_pipeline
from voc_yolo.serve.testing import FIXTURES_ENV

os.environ.setdefault('WANDB_MODE', 'disabled')  # no W&B in tests unless the test is about W&B (nbs/design.ipynb)
os.environ['YOLO_AUTOINSTALL'] = 'false'  # no run-time pip installs from Ultralytics in any test process (offline_setup sets it too)


@pytest.fixture(scope='session', autouse=True)
def shared_serving_fixtures(tmp_path_factory):
    "The serving fixtures (voc_yolo.serve.testing) built once for the session and shared by the processes it starts."
    before = os.environ.get(FIXTURES_ENV)
    os.environ[FIXTURES_ENV] = str(tmp_path_factory.mktemp('serving-fixtures'))
    yield
    if before is None: os.environ.pop(FIXTURES_ENV, None)
    else: os.environ[FIXTURES_ENV] = before


@pytest.fixture
def repo_copy(tmp_path):
    "A clean copy of the repository for one test."
    return clean_copy(tmp_path/'repo')


class Background(threading.Thread):
    "A command run in the background in a process group of its own (`stop()` ends its children too); `wait()` gives its result."
    def __init__(self, folder:Path):
        super().__init__(daemon=True); self.folder, self.result, self.error, self.proc = folder, None, None, None

    def command(self, cmd, repo:Path)->tuple[str, str, float]:
        "Run `cmd` in `repo`: its output, errors and seconds."
        t = time.perf_counter()
        self.proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        out, err = self.proc.communicate()
        return out, err, time.perf_counter() - t

    def stop(self):
        "End a run still going (a session stopped early, or one whose tests were all deselected)."
        if self.is_alive() and self.proc and self.proc.poll() is None: os.killpg(self.proc.pid, signal.SIGKILL)
        self.join(60)

    def wait(self)->dict:
        self.join()
        if self.error: raise self.error
        return self.result


class TinyRun(Background):
    "A clean copy running the whole pipeline (`dvc repro`) on tiny params, in the background: mostly one core's work."
    def run(self):
        try:
            repo = clean_copy(self.folder/'repo'); tiny_pipeline(repo)
            out, err, seconds = self.command(['dvc', 'repro'], repo)
            if self.proc.returncode: raise AssertionError(f"`dvc repro` of the tiny pipeline failed ({self.proc.returncode}):\n"
                                                          f"{out[-3000:]}\n{err[-3000:]}")
            self.result = dict(repo=repo, seconds=seconds, log=out)
        except BaseException as e: self.error = e


SWEEP = "voc-yolo sweep -S 'params/train.yaml:imgsz=64,96' --no-compare evaluate profile quantize"


class SweepRun(Background):
    """The experiment sweep of tests/test_experiments.py, started once the tiny pipeline is done, on a copy of it, in the
    background: it is one core's work for minutes, and the other tests that need the tiny run go on meanwhile."""
    def __init__(self, tiny, folder:Path): super().__init__(folder); self.tiny = tiny

    def run(self):
        repo = self.folder/'repo'  # a copy: tiny_run's own lock stays true for the tests that read it
        try:
            shutil.copytree(self.tiny.wait()['repo'], repo, symlinks=True)
            subprocess.run('git add -A && git -c user.email=t@t -c user.name=t commit -qm baseline', shell=True, cwd=repo, check=True,
                           capture_output=True)  # queued runs see committed files only
            out, err, seconds = self.command(SWEEP, repo)
            self.result = dict(repo=repo, returncode=self.proc.returncode, stdout=out, stderr=err, seconds=seconds)
        except BaseException as e: self.error = e
        finally:
            if repo.is_dir(): subprocess.run(['dvc', 'queue', 'stop'], cwd=repo, capture_output=True)  # no worker outlives it


@pytest.fixture(scope='session')
def tiny_run(request, tmp_path_factory):
    """A clean copy that has run the whole pipeline on tiny params. Tests read it; one that reruns a stage copies it first.
    Started at collection (see below) while the tests that do not need it run."""
    build = getattr(request.config, 'tiny_run', None)
    if build is None: build = TinyRun(tmp_path_factory.mktemp('tiny')); build.start()
    return build.wait()


@pytest.fixture(scope='module')
def deployed(tiny_run, tmp_path_factory):
    "A copy of the tiny pipeline's deployed model (and its deploy.json), plus its test images."
    tmp = tmp_path_factory.mktemp('serve'); repo = tiny_run['repo']
    shutil.copytree(repo/'models/deploy', tmp/'deploy'); shutil.copy(repo/'models/deploy.json', tmp/'deploy.json')
    images = sorted((repo/'data/voc_yolo/images/test').iterdir())
    return dict(tmp=tmp, deploy=tmp/'deploy', images=images, onnx=repo/'runs/quantize/onnx/best.onnx',
                ir=repo/'runs/quantize/openvino_fp32/best_openvino_model')


@pytest.fixture(scope='session')
def small_devkit(tmp_path_factory):
    "A 12 + 6 image synthetic VOCdevkit (read-only: copy it before changing it)."
    from voc_yolo.synthetic import make_synthetic_voc
    return make_synthetic_voc(tmp_path_factory.mktemp('devkit'), n_train=12, n_test=6, img_size=96, seed=3, workers=1)


def chrome_and_driver():
    "The browser and driver tools/system_deps.sh finds: Chrome first (GitHub's runners; Ubuntu's chromium is a snap stub), else Chromium."
    browser = next(filter(None, map(shutil.which, ('google-chrome', 'google-chrome-stable', 'chromium'))), None)
    driver = Path(os.environ.get('CHROMEWEBDRIVER', '/nonexistent'))/'chromedriver'
    return browser, str(driver) if os.access(driver, os.X_OK) else shutil.which('chromedriver')


CHROMIUM, DRIVER = chrome_and_driver()


@pytest.fixture(scope='session')
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail('Chrome or Chromium and chromedriver are needed: `make browser` (tools/system_deps.sh)')
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


BOTH_CORES = ('test_notebook_tests.py',)  # tests that keep every core busy on their own
AFTER_SWEEP = ('test_experiments.py', 'test_hardening.py')  # the sweep's own test, then the tests with latency bounds


SLOW_FIXTURES = {'tiny_run', 'sweep_run', 'deployed', 'repo_copy', 'serve_image'}  # a pipeline, a repository copy or an image
SLOW_FILES = {'test_docker.py'}


def pytest_itemcollected(item):
    """Mark slow what runs DVC, papermill or a built image, by the fixtures it asks for (before -m deselects:
    `pytest -m "not slow"`, make test-fast, leaves these out); no test has to remember the marker."""
    if SLOW_FIXTURES & set(getattr(item, 'fixturenames', ())) or item.path.name in SLOW_FILES: item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """The tiny pipeline starts now, in the background, and the tests that do not need it run first, on the other core.
    The Docker tests go last, and their image starts building now too, while the rest of the suite runs."""
    if config.option.collectonly: return  # nothing runs: nothing to start
    tiny = [i for i in items if 'tiny_run' in getattr(i, 'fixturenames', ())]
    if tiny:
        config.tiny_run = TinyRun(Path(config._tmp_path_factory.mktemp('tiny'))); config.tiny_run.start()
        if any('sweep_run' in getattr(i, 'fixturenames', ()) for i in tiny):  # its own thread waits for the tiny run
            config.sweep_run = SweepRun(config.tiny_run, Path(config._tmp_path_factory.mktemp('sweep'))); config.sweep_run.start()
        wide = [i for i in items if i.path.name in BOTH_CORES and i not in tiny]  # after the one-core tests that share with it
        late = [i for i in tiny if i.path.name in AFTER_SWEEP]  # timing bounds: not beside the sweep's trainings
        items[:] = [i for i in items if i not in tiny and i not in wide] + wide + [i for i in tiny if i not in late] + late
    docker = [i for i in items if i.path.name == 'test_docker.py']
    if not docker: return
    items[:] = [i for i in items if i not in docker] + docker
    from serve_image import ServeImage
    workdir = Path(config._tmp_path_factory.mktemp('serve_image'))
    config.serve_image = ServeImage(workdir).start()


@pytest.fixture(scope='session')
def serve_image(request):
    "The serve image being built since collection (tests/serve_image.py): waits for it; removes it and stops dockerd at the end."
    build = getattr(request.config, 'serve_image', None)
    if build is None: pytest.skip('the serve image is built only when test_docker.py is collected')
    try: yield dict(docker=build.docker, **build.wait())
    finally: build.stop()


@pytest.fixture(scope='session')
def s3():
    "moto's S3 server (what dvc-s3's own test suite uses) on a loopback port, with an empty bucket; its endpoint URL."
    moto_server = pytest.importorskip('moto.server', reason="moto[server] is a dev requirement: make install")
    import boto3
    logging.getLogger('werkzeug').setLevel(logging.WARNING)  # not a log line per S3 request
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)  # DVC's subprocesses read the credentials from the environment, as on a CI runner
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    try:
        url = f'http://127.0.0.1:{port}'
        boto3.client('s3', endpoint_url=url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


def pytest_sessionfinish(session):
    for name in ('tiny_run', 'sweep_run'):  # the tiny run first: a sweep still waiting for it then ends at once
        run = getattr(session.config, name, None)
        if run is not None: run.stop()


@pytest.fixture(scope='session')
def sweep_run(request, tiny_run, tmp_path_factory):
    "The experiment sweep on a copy of the tiny run (SWEEP), started in the background when the tiny run was done."
    build = getattr(request.config, 'sweep_run', None)
    if build is None: build = SweepRun(SimpleNamespace(wait=lambda: tiny_run), tmp_path_factory.mktemp('sweep')); build.start()
    return build.wait()
