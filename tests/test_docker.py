"""The serve image for real: built by `make docker-serve` from the package index (and offline from the host's wheelhouse),
on python:3.11-slim-bookworm or a base made of Debian packages, run on a loopback port with the tiny pipeline's model,
answering what the in-process runtime answers, as a non-root user without torch."""
import json, re, time, urllib.request, uuid
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
import yaml

from helpers import BUCKET, ROOT, S3_ENV, free_port
from serve_image import sh
from voc_yolo.serve.testing import multipart

TOKEN = 'docker-token'


def compose_hardening():
    "`docker run` flags for what deploy/compose.yaml asks of the serve service: read-only root, no capabilities, limits, user."
    svc = yaml.safe_load((ROOT/'deploy/compose.yaml').read_text())['services']['serve']
    flags = ['--read-only'] if svc['read_only'] else []
    for key, flag in (('tmpfs', '--tmpfs'), ('cap_drop', '--cap-drop'), ('security_opt', '--security-opt')):
        flags += [f for v in svc[key] for f in (flag, v)]
    store = next(v.split(':')[1] for v in svc['volumes'] if v.startswith('store:'))  # the named volume: an anonymous one here
    return [*flags, '--memory', svc['mem_limit'], '--pids-limit', str(svc['pids_limit']), '--user', svc['user'],
            '--mount', f'type=volume,dst={store}']


@pytest.fixture(scope='module')
def docker(serve_image): return serve_image['docker']


@pytest.fixture(scope='module')
def image(serve_image):
    "The serve image (conftest's `serve_image`, built in the background since the tests were collected)."
    times = ', '.join(f'{k} {v:.0f}' for k, v in serve_image['times'].items())
    print(f"serve image {serve_image['size'] / 1e6:.0f} MB on {serve_image.get('base', 'its own base')}; build times, s: {times}")
    return serve_image


@contextmanager
def running(docker, image, deploy, *flags, host_network=False):
    """The serve image in a container with `deploy` mounted as its model, once /ready answers 200: (id, url); removed afterwards.
    `host_network`: on the host's loopback (where this test's moto listens), on a free port instead of a published 8000."""
    port = free_port()
    net = ['--network', 'host'] if host_network else ['-p', f'127.0.0.1:{port}:8000']
    cmd = ['voc-yolo', 'serve', '--host', '127.0.0.1', '--port', str(port)] if host_network else []
    cid = sh(docker, 'run', '-d', *net, '-v', f'{deploy}:/models/deploy:ro', *flags, image['name'], *cmd,
             check=True).stdout.strip()
    try:
        url = f'http://127.0.0.1:{port}'
        for _ in range(120):
            try:
                if urllib.request.urlopen(f'{url}/ready', timeout=2).status == 200: break
            except OSError: time.sleep(0.5)
        else: raise AssertionError('not ready in 60 s:\n' + sh(docker, 'logs', cid).stderr[-3000:])
        yield cid, url
    finally: sh(docker, 'rm', '-f', '-v', cid)


@pytest.fixture
def container(docker, image, tiny_run):
    deploy = tiny_run['repo']/'models/deploy'
    flags = ['--health-interval=1s', '-e', 'VOC_YOLO_THREADS=1', '-e', f'VOC_YOLO_TOKEN={TOKEN}', *compose_hardening()]
    with running(docker, image, deploy, *flags) as (cid, url):
        yield dict(id=cid, url=url, deploy=deploy, images=sorted((tiny_run['repo']/'data/voc_yolo/images/test').iterdir()),
                   onnx=tiny_run['repo']/'runs/quantize/onnx/best.onnx')


def test_serve_image_is_small_and_answers_like_the_runtime(docker, image, container):
    from voc_yolo.runtime import Predictor
    assert image['size'] < 800e6, f"{image['size'] / 1e6:.0f} MB"  # 769 MB with s3fs and gcsfs (691 MB without)
    pred = Predictor(container['deploy'], threads=1)
    compared = 0
    for f in container['images'][:4]:  # conf 1e-4: a 2-epoch 64 px model finds little at a useful threshold
        body, ctype = multipart((f.name, f.read_bytes()))
        req = urllib.request.Request(f"{container['url']}/predict/deploy?conf=0.0001", data=body, headers={'Content-Type': ctype})
        with urllib.request.urlopen(req, timeout=30) as r: got = json.loads(r.read())['images'][0]['detections']
        want = pred.predict_one(cv2.imread(str(f)), conf=1e-4)['detections']
        assert len(got) == len(want) and [d['class_id'] for d in got] == [d['class_id'] for d in want], f.name
        assert np.allclose([d['box'] for d in got], [d['box'] for d in want], atol=0.5), f.name
        assert np.allclose([d['confidence'] for d in got], [d['confidence'] for d in want], atol=1e-3), f.name
        compared += len(want)
    print(f'{compared} detections compared on 4 images')
    assert compared >= 20, f'only {compared} detections compared: the comparison tests too little'
    for _ in range(30):  # the HEALTHCHECK (on /ready) reports healthy
        if sh(docker, 'inspect', '-f', '{{.State.Health.Status}}', container['id']).stdout.strip() == 'healthy': break
        time.sleep(1)
    else: raise AssertionError(sh(docker, 'inspect', '-f', '{{json .State.Health}}', container['id']).stdout)


def installed(docker, image)->list:
    "The Python distributions in an image's venv, as name-version."
    ls = 'ls /opt/venv/lib/python3.11/site-packages | grep dist-info$'
    return sh(docker, 'run', '--rm', '--entrypoint', 'sh', image, '-c', ls, check=True).stdout.split()


def test_index_and_wheelhouse_builds_install_the_same_packages(docker, image):
    if not image['built']: pytest.skip(f"VOC_YOLO_TEST_IMAGE={image['name']}: testing that image, none was built")
    wheelhouse = image['wheelhouse']
    print(f"wheelhouse image {wheelhouse['size'] / 1e6:.0f} MB")
    assert wheelhouse['size'] < 800e6, f"{wheelhouse['size'] / 1e6:.0f} MB"
    got, want = installed(docker, wheelhouse['name']), installed(docker, image['name'])
    assert got == want and any(d.startswith('openvino-') for d in got), (sorted(set(got) ^ set(want)), got)


def test_a_given_image_is_tested_instead_of_a_build(docker, image, tmp_path, monkeypatch):
    "VOC_YOLO_TEST_IMAGE (the images workflow's smoke test of the pushed digest): that image, none built, none removed after."
    from serve_image import ServeImage
    monkeypatch.setenv('VOC_YOLO_TEST_IMAGE', image['name'])
    given = ServeImage(tmp_path).start().wait()
    assert given == dict(name=image['name'], size=image['size'], times={}, built=False), given


def test_serve_image_runs_hardened_as_non_root_without_torch(docker, container):
    assert sh(docker, 'exec', container['id'], 'id', '-u', check=True).stdout.strip() != '0'
    host = json.loads(sh(docker, 'inspect', '-f', '{{json .HostConfig}}', container['id'], check=True).stdout)
    assert host['ReadonlyRootfs'] and host['CapDrop'] == ['ALL'] and 'no-new-privileges:true' in host['SecurityOpt'], host
    assert host['Memory'] > 0 and host['PidsLimit'] > 0
    assert sh(docker, 'exec', container['id'], 'touch', '/srv/x').returncode != 0  # the root file system is read-only
    import requests
    r = requests.post(f"{container['url']}/upload", data={'name': 'mine'}, files={'file': ('m.onnx', container['onnx'].read_bytes())},
                      headers={'Authorization': f'Bearer {TOKEN}'}, timeout=120)
    assert r.status_code == 201 and r.json()['version'] == 1, r.text  # ...but uploads land in the store volume
    r = sh(docker, 'exec', container['id'], 'python3', '-c', 'import torch')
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr, r.stderr
    r = sh(docker, 'exec', container['id'], 'python3', '-c', 'import ultralytics')
    assert r.returncode != 0 and "No module named 'ultralytics'" in r.stderr
    env = sh(docker, 'exec', container['id'], 'env', check=True).stdout
    assert 'VOC_YOLO_DEPLOY=/models/deploy' in env and 'VOC_YOLO_THREADS=1' in env


def test_a_2g_2cpu_container_answers_64_huge_images_with_503s_not_an_oom_kill(docker, image, tiny_run):
    "64 concurrent 40-Mpx PNGs (about 7.7 GB decoded) into `--memory 2g --cpus 2`: the pixel budget admits what fits, the rest get 503."
    from concurrent.futures import ThreadPoolExecutor
    with running(docker, image, tiny_run['repo']/'models/deploy', '--memory', '2g', '--cpus', '2') as (cid, url):
        probe = ('from voc_yolo.serve.settings import *; s = Settings(); '
                 'print(cpu_quota(), memory_limit(), s.pixel_budget, s.n_decode_threads)')
        quota, limit, budget, threads = sh(docker, 'exec', cid, 'python', '-c', probe, check=True).stdout.split()
        assert (float(quota), int(limit), int(budget)) == (2.0, 2 * 2**30, 2**30 // 6), (quota, limit, budget)
        assert int(threads) <= 2, threads  # the CPUs the container may use, not the host's
        body, ctype = multipart(('huge.png', cv2.imencode('.png', np.full((5000, 8000, 3), 90, np.uint8))[1].tobytes()))
        def ask(_):
            req = urllib.request.Request(f'{url}/predict', data=body, headers={'Content-Type': ctype}, method='POST')
            try:
                with urllib.request.urlopen(req, timeout=300) as r: return r.status
            except urllib.error.HTTPError as e: return e.code
        with ThreadPoolExecutor(64) as pool: codes = list(pool.map(ask, range(64)))
        state = json.loads(sh(docker, 'inspect', '-f', '{{json .State}}', cid, check=True).stdout)
        peak = sh(docker, 'exec', cid, 'sh', '-c', 'cat /sys/fs/cgroup/memory.peak || cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes')
        peak = f'{int(peak.stdout) / 2**20:.0f} MiB' if peak.stdout.strip().isdigit() else 'not readable'  # cgroup v2, else v1
        print(f"64 requests of 40 Mpx: {codes.count(200)} answered, {codes.count(503)} refused with 503; container memory peak {peak}")
        assert not state['OOMKilled'] and state['Running'], state
        assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
        assert urllib.request.urlopen(f'{url}/ready', timeout=5).status == 200  # still serving


def store_schemes()->set:
    "The URL schemes of the model stores the deploy manifests name (VOC_YOLO_MODELS): s3 in deploy/k8s, gs in Cloud Run."
    k8s = (ROOT/'deploy/k8s/base/kustomization.yaml').read_text() + (ROOT/'deploy/cloudrun.yaml').read_text()
    return set(re.findall(r'VOC_YOLO_MODELS\W.*?(\w+)://', k8s))  # `=s3://…` in a literal, `value: "gs://…"` in an env list


def test_the_image_can_open_every_store_the_manifests_name(docker, image):
    "fsspec finds an implementation in the image for each scheme (s3fs, gcsfs): a pod does not fail on its first listing."
    schemes = store_schemes()
    assert schemes == {'s3', 'gs'}, schemes  # the manifests as they are: a new scheme is checked here too
    probe = f"import fsspec; print(*(fsspec.get_filesystem_class(p).__module__.split('.')[0] for p in {sorted(schemes)}))"
    r = sh(docker, 'run', '--rm', '--entrypoint', 'python3', image['name'], '-c', probe)
    assert r.returncode == 0 and r.stdout.split() == ['gcsfs', 's3fs'], r.stdout + r.stderr[-2000:]  # gs, s3: both installed


def test_the_image_serves_an_upload_from_an_s3_store_as_a_pod_does(docker, image, tiny_run, s3):
    "VOC_YOLO_MODELS=s3://… as deploy/k8s sets it, against moto: an upload lands in the bucket and is listed and served."
    import boto3, requests
    prefix = f'image-{uuid.uuid4().hex[:8]}'
    env = {**S3_ENV, 'AWS_ENDPOINT_URL': s3, 'VOC_YOLO_MODELS': f's3://{BUCKET}/{prefix}', 'VOC_YOLO_TOKEN': TOKEN,
           'VOC_YOLO_THREADS': '1', 'VOC_YOLO_POLL_S': '0.5'}
    flags = [a for k, v in env.items() for a in ('-e', f'{k}={v}')]
    onnx = tiny_run['repo']/'runs/quantize/onnx/best.onnx'
    with running(docker, image, tiny_run['repo']/'models/deploy', *flags, host_network=True) as (cid, url):
        r = requests.post(f'{url}/upload', data={'name': 'mine'}, files={'file': ('m.onnx', onnx.read_bytes())},
                          headers={'Authorization': f'Bearer {TOKEN}'}, timeout=120)
        assert r.status_code == 201 and r.json()['version'] == 1, r.text
        keys = [o['Key'] for o in boto3.client('s3', endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix=prefix)['Contents']]
        assert any(k.startswith(f'{prefix}/mine/1/') for k in keys), keys  # in the bucket, not on the container's disk
        deadline = time.time() + 30
        while 'mine' not in {m['name'] for m in requests.get(f'{url}/models', timeout=5).json()}:
            assert time.time() < deadline, sh(docker, 'logs', cid).stderr[-3000:]
            time.sleep(0.5)
        img = next((tiny_run['repo']/'data/voc_yolo/images/test').iterdir())
        r = requests.post(f'{url}/predict/mine', files={'file': (img.name, img.read_bytes(), 'image/jpeg')}, timeout=60)
        assert r.status_code == 200 and len(r.json()['images']) == 1, r.text
