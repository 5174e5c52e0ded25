"Drift detection through the live service: test images give no drift; darkened, blurred, noised or resized ones drift on the right feature."
import json, urllib.request

import cv2
import numpy as np
import pytest

from voc_yolo.harness import ServiceProcess
from voc_yolo.serve.testing import multipart


def post(url, name, img):
    body, ctype = multipart((name, cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()))
    req = urllib.request.Request(f'{url}/predict/deploy', data=body, headers={'Content-Type': ctype})
    with urllib.request.urlopen(req, timeout=30) as r: assert r.status == 200


def get(url, path):
    with urllib.request.urlopen(url + path, timeout=10) as r: return r.read().decode()


@pytest.fixture(scope='module')
def service(tiny_run, tmp_path_factory):
    "The tiny pipeline's deployed model, served with a window of 8 images: each batch of 8 replaces the last."
    tmp = tmp_path_factory.mktemp('drift'); repo = tiny_run['repo']
    env = {'VOC_YOLO_DEPLOY': str(repo/'models/deploy'), 'VOC_YOLO_MODELS': str(tmp/'store'),
           'VOC_YOLO_DRIFT_WINDOW': '8', 'VOC_YOLO_DRIFT_MIN_IMAGES': '8'}
    images = [(f.name, cv2.imread(str(f))) for f in sorted((repo/'data/voc_yolo/images/test').iterdir())]
    assert len(images) == 8
    with ServiceProcess(tmp/'serve.log', env) as svc:
        svc.wait_ready(120)
        yield svc.url, images


def drift_after(url, images):
    for name, img in images: post(url, name, img)
    return json.loads(get(url, '/drift'))


def test_not_enough_data_then_no_drift_on_test_images(service):
    url, images = service
    first = json.loads(get(url, '/drift'))
    assert first['status'] == 'not enough data' and first['drift'] is None and 'drift is tested from 8' in first['detail']
    r = drift_after(url, images)
    assert r['status'] == 'ok' and r['drift'] is False and r['drifted'] == [], r
    assert r['images'] == 8 and all(f['score'] is None or f['score'] > r['threshold'] for f in r['features'].values())


SHIFTS = {'brightness': lambda im, rng: (im * 0.45).astype(np.uint8),
          'sharpness': lambda im, rng: cv2.GaussianBlur(im, (0, 0), 2.5),
          'noise': lambda im, rng: np.clip(im + rng.normal(0, 14, im.shape), 0, 255).astype(np.uint8),
          'resolution': lambda im, rng: cv2.resize(im, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)}


@pytest.mark.parametrize('feature', list(SHIFTS))
def test_shifted_images_drift_on_the_right_feature(service, feature):
    url, images = service; rng = np.random.default_rng(0)
    r = drift_after(url, [(n, SHIFTS[feature](im, rng)) for n, im in images])
    assert r['drift'] is True and feature in r['drifted'], (feature, r['drifted'], {k: v['score'] for k, v in r['features'].items()})
    page = get(url, '/metrics')
    assert f'voc_yolo_drift_detected{{feature="{feature}",model="deploy"}} 1.0' in page
    drift_after(url, images)  # back to the test images: the window forgets the shift
