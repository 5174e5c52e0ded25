"""The serve image for real: built offline from the host's wheelhouse on a base made of Debian packages, run on a
loopback port with the tiny pipeline's model, answering what the in-process runtime answers, as a non-root user without torch."""
import json, os, shutil, subprocess, time, urllib.request

import cv2
import numpy as np
import pytest

from helpers import ROOT, free_port, multipart

DOCKER = '/usr/bin/docker' if os.access('/usr/bin/docker', os.X_OK) else shutil.which('docker')  # Debian's client does BuildKit
BASE, IMAGE = 'voc-yolo/base:bookworm', 'voc-yolo/serve:test'


def sh(*cmd, check=False, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def apt_install(*pkgs):
    r = sh('bash', '-c', f'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {" ".join(pkgs)}')
    if r.returncode: pytest.skip(f'apt-get install {" ".join(pkgs)} failed: {r.stderr[-500:]}')


@pytest.fixture(scope='module')
def docker(tmp_path_factory):
    "A Docker daemon that answers: the running one, or (as root) Debian's docker.io started here, stopped after the tests."
    global DOCKER
    started = None
    if not DOCKER or sh(DOCKER, 'info').returncode:
        if os.geteuid() != 0: pytest.skip('no Docker daemon answers and this user is not root: start dockerd to test the serve image')
        if not shutil.which('dockerd'): apt_install('docker.io'); DOCKER = '/usr/bin/docker'
        log = tmp_path_factory.mktemp('dockerd')/'dockerd.log'
        started = subprocess.Popen(['dockerd', '--storage-driver=overlay2'], stdout=log.open('w'), stderr=subprocess.STDOUT)
        for _ in range(60):
            if not sh(DOCKER, 'info').returncode: break
            if started.poll() is not None: break
            time.sleep(1)
        else: started.poll()
        if sh(DOCKER, 'info').returncode:
            started.terminate(); started.wait(30)
            pytest.skip(f'dockerd does not start on this machine:\n{log.read_text()[-1500:]}')
    yield DOCKER
    if started:
        started.terminate()
        try: started.wait(30)
        except subprocess.TimeoutExpired: started.kill(); started.wait()


@pytest.fixture(scope='module')
def image(docker):
    "The serve image: the Debian base (make docker-base, once), the wheelhouse (make wheelhouse), the build with no network."
    times = {}
    if sh(docker, 'image', 'inspect', BASE).returncode:
        if not shutil.which('mmdebstrap'):
            if os.geteuid() != 0: pytest.skip(f'no {BASE} image and no mmdebstrap to build it (apt-get install mmdebstrap)')
            apt_install('mmdebstrap')
        t = time.perf_counter(); sh('make', 'docker-base', f'DOCKER={docker}', cwd=ROOT, check=True)
        times['base'] = time.perf_counter() - t
    t = time.perf_counter(); sh('make', 'wheelhouse', cwd=ROOT, check=True); times['wheelhouse'] = time.perf_counter() - t
    t = time.perf_counter()
    r = sh('env', 'DOCKER_BUILDKIT=1', docker, 'build', '--network=none', '-f', 'deploy/serve.Dockerfile', '--target', 'serve',
           '--build-arg', f'BASE_IMAGE={BASE}', '-t', IMAGE, '.', cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    times['image'] = time.perf_counter() - t
    size = int(sh(docker, 'image', 'inspect', '-f', '{{.Size}}', IMAGE, check=True).stdout)
    print(f"serve image {size / 1e6:.0f} MB; build times, s: " + ', '.join(f'{k} {v:.0f}' for k, v in times.items()))
    yield dict(name=IMAGE, size=size)
    sh(docker, 'rmi', '-f', IMAGE)


@pytest.fixture
def container(docker, image, tiny_run):
    port, deploy = free_port(), tiny_run['repo']/'models/deploy'
    cid = sh(docker, 'run', '-d', '--health-interval=1s', '-p', f'127.0.0.1:{port}:8000', '-v', f'{deploy}:/models/deploy:ro',
             '-e', 'VOC_YOLO_THREADS=1', image['name'], check=True).stdout.strip()
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(120):
            try:
                if urllib.request.urlopen(f'{url}/ready', timeout=2).status == 200: break
            except OSError: time.sleep(0.5)
        else: raise AssertionError('not ready in 60 s:\n' + sh(docker, 'logs', cid).stderr[-3000:])
        yield dict(id=cid, url=url, deploy=deploy, images=sorted((tiny_run['repo']/'data/voc_yolo/images/test').iterdir()))
    finally: sh(docker, 'rm', '-f', cid)


def test_serve_image_is_small_and_answers_like_the_runtime(docker, image, container):
    from voc_yolo.runtime import Predictor
    assert image['size'] < 700e6, f"{image['size'] / 1e6:.0f} MB"
    pred = Predictor(container['deploy'], threads=1)
    for f in container['images'][:4]:
        body, ctype = multipart(f.name, f.read_bytes())
        req = urllib.request.Request(f"{container['url']}/predict/deploy?conf=0.05", data=body, headers={'Content-Type': ctype})
        with urllib.request.urlopen(req, timeout=30) as r: got = json.loads(r.read())['images'][0]['detections']
        want = pred.predict_one(cv2.imread(str(f)), conf=0.05)['detections']
        assert [d['class_id'] for d in got] == [d['class_id'] for d in want], f.name
        if want:
            assert np.allclose([d['box'] for d in got], [d['box'] for d in want], atol=0.5), f.name
            assert np.allclose([d['confidence'] for d in got], [d['confidence'] for d in want], atol=1e-3), f.name
    for _ in range(30):  # the HEALTHCHECK (on /ready) reports healthy
        if sh(docker, 'inspect', '-f', '{{.State.Health.Status}}', container['id']).stdout.strip() == 'healthy': break
        time.sleep(1)
    else: raise AssertionError(sh(docker, 'inspect', '-f', '{{json .State.Health}}', container['id']).stdout)


def test_serve_image_runs_as_non_root_without_torch(docker, container):
    assert sh(docker, 'exec', container['id'], 'id', '-u', check=True).stdout.strip() != '0'
    r = sh(docker, 'exec', container['id'], 'python3', '-c', 'import torch')
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr, r.stderr
    r = sh(docker, 'exec', container['id'], 'python3', '-c', 'import ultralytics')
    assert r.returncode != 0 and "No module named 'ultralytics'" in r.stderr
    env = sh(docker, 'exec', container['id'], 'env', check=True).stdout
    assert 'VOC_YOLO_DEPLOY=/models/deploy' in env and 'VOC_YOLO_THREADS=1' in env
