"Shared fixtures: a throwaway copy of the repository, the tiny pipeline run, a small synthetic VOCdevkit, a browser (helpers: helpers.py)."
import logging
import os
import shutil
from pathlib import Path

import pytest

from helpers import BUCKET, S3_ENV, clean_copy, free_port, run, tiny_pipeline

os.environ.setdefault('WANDB_MODE', 'disabled')  # no W&B in tests unless the test is about W&B (nbs/design.ipynb)
os.environ['YOLO_AUTOINSTALL'] = 'false'  # no run-time pip installs from Ultralytics in any test process (offline_setup sets it too)


@pytest.fixture
def repo_copy(tmp_path):
    "A clean copy of the repository for one test."
    return clean_copy(tmp_path/'repo')


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    "A clean copy that has run the whole pipeline (`dvc repro`) on tiny params. Tests read it; one that reruns a stage copies it first."
    import time
    repo = clean_copy(tmp_path_factory.mktemp('tiny')/'repo')
    tiny_pipeline(repo)
    t = time.perf_counter(); out = run('dvc repro', repo).stdout
    return dict(repo=repo, seconds=time.perf_counter() - t, log=out)


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


def pytest_collection_modifyitems(session, config, items):
    "The Docker tests go last, and their image starts building now, in the background, while the rest of the suite runs."
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
