"""The inference service as a user meets it: a real uvicorn server on a loopback port serving the tiny pipeline's
deployed model. Boxes equal Ultralytics', bad requests get a 4xx and a message, the service keeps answering."""
import concurrent.futures as cf
import http.client
import json
import re
import os
import shutil
import struct
import uuid
import zlib
from pathlib import Path

import pytest
import requests

from helpers import ROOT, metric, run, ultralytics_path
from voc_yolo.harness import ServiceProcess

TOKEN = 's3cret-token'


def Server(tmp, deploy, *flags):
    "`voc-yolo serve` (the console script a user types) with these flags, on a free loopback port; stopped by its PID."
    return ServiceProcess(tmp/f'serve-{uuid.uuid4().hex[:8]}.log', command=[shutil.which('voc-yolo')],
                          flags=('--deploy', str(deploy), '--models', str(tmp/'store'), *flags)).start()


@pytest.fixture(scope='module')
def server(deployed):
    s = Server(deployed['tmp'], deployed['deploy'], '--token', TOKEN, '--max-body-mb', '16', '--decode-threads', '2', '--max-queue', '64')
    try: yield s.wait_ready()
    finally: s.stop()


def post_image(server, data, name='a.jpg', model='deploy', **params):
    return requests.post(f'{server.url}/predict/{model}', params=params, files={'file': (name, data)}, timeout=30)


def test_health_ready_models_and_no_torch_in_the_server(server, deployed):
    assert requests.get(f'{server.url}/health').json() == {'status': 'alive'}
    assert requests.get(f'{server.url}/ready').json() == {'ready': True, 'models': ['deploy'], 'failed': {}}
    [m] = requests.get(f'{server.url}/models').json()
    deploy = json.loads((deployed['tmp']/'deploy.json').read_text())
    got = (m['name'], m['version'], m['origin'], m['precision'], m['imgsz'], m['mAP50'])
    assert got == ('deploy', 1, 'pipeline', deploy['precision'], [64, 64], deploy['mAP50']) and m['precision'] in ('int8', 'fp32', 'fp16')
    assert len(m['class_names']) == 20 and m['class_names'][0] == 'aeroplane' and m['file_mb'] > 0
    maps = Path(f'/proc/{server.proc.pid}/maps').read_text()
    assert 'libtorch' not in maps and 'ultralytics' not in maps, 'the service process must not load torch'


def test_boxes_equal_ultralytics(server, deployed):
    """≥99% of Ultralytics' detections are among ours and ≥99% of ours among Ultralytics' (class, IoU ≥ 0.99, confidence
    within 1e-3), images of every shape."""
    import cv2
    from voc_yolo.core import offline_setup
    offline_setup()
    from ultralytics import YOLO
    ref = YOLO(str(ultralytics_path(deployed['deploy'], deployed['tmp']/'ref_openvino_model')), task='detect')
    cases = []
    for f in deployed['images']:
        img = cv2.imread(str(f))
        cases += [img, cv2.resize(img, (200, 130)), cv2.resize(img, (40, 30)), img[: img.shape[0] // 2]]
    theirs_found = ours_found = n_theirs = n_ours = 0
    for img in cases:
        ours = post_image(server, cv2.imencode('.png', img)[1].tobytes(), 'x.png', conf=1e-4, iou=0.7).json()['images'][0]['detections']
        b = ref.predict(img, imgsz=64, conf=1e-4, iou=0.7, verbose=False)[0].boxes  # the model's size (a dynamic ONNX would run at 640)
        theirs = [dict(class_id=int(c), confidence=s, box=box) for c, s, box in zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist())]
        theirs_found += sum(any(same(d, t) for d in ours) for t in theirs)
        ours_found += sum(any(same(d, t) for t in theirs) for d in ours)
        n_theirs += len(theirs); n_ours += len(ours)
    print(f"{theirs_found}/{n_theirs} of Ultralytics' detections among ours, {ours_found}/{n_ours} of ours among Ultralytics', "
          f'{len(cases)} images')
    assert n_theirs > 100 and n_ours > 100, (n_theirs, n_ours)
    assert theirs_found / n_theirs >= 0.99 and ours_found / n_ours >= 0.99, (theirs_found, n_theirs, ours_found, n_ours)


def same(a:dict, b:dict)->bool:
    "Two detections agree: class, confidence within 1e-3, IoU ≥ 0.99."
    return a['class_id'] == b['class_id'] and abs(a['confidence'] - b['confidence']) <= 1e-3 and iou(a['box'], b['box']) >= 0.99


def iou(a, b):
    w = max(0, min(a[2], b[2]) - max(a[0], b[0])); h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h + 1e-9)


def png_bomb(w, h):
    "A small PNG whose header declares w×h pixels."
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 1024)) + chunk(b'IEND', b''))


def test_bad_images_get_a_clear_4xx_and_the_service_keeps_serving(server, deployed):
    jpg = deployed['images'][0].read_bytes()
    cases = {'not an image': (b'GIF? no, a text file', 415, 'not a JPEG, PNG, WebP or BMP image'),
             'truncated': (jpg[: len(jpg) // 2], 422, 'truncated JPEG'),
             'empty': (b'', 422, 'empty file'), 'bomb': (png_bomb(30000, 30000), 413, 'refused before decoding')}
    for case, (data, status, msg) in cases.items():
        r = post_image(server, data)
        assert (r.status_code, msg in r.json()['detail']) == (status, True), (case, r.status_code, r.text)
        assert post_image(server, jpg).status_code == 200, f'the service stopped answering after: {case}'
    r = post_image(server, jpg, model='nope')
    assert r.status_code == 404 and "no model named 'nope'; GET /models lists the models served" in r.json()['detail']


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    "The headers announce 100 MB; the server answers 413 having read none of it (we never send the body)."
    c = http.client.HTTPConnection('127.0.0.1', server.port, timeout=10)
    c.putrequest('POST', '/predict/deploy'); c.putheader('Content-Type', 'multipart/form-data; boundary=x')
    c.putheader('Content-Length', str(100 * 2**20)); c.endheaders()
    r = c.getresponse()
    assert r.status == 413 and 'over the limit of 16,777,216' in json.loads(r.read())['detail']
    c.close()
    r = requests.post(f'{server.url}/predict/deploy', files={'file': ('big.jpg', os.urandom(17 * 2**20))})
    assert r.status_code == 413
    r = requests.post(f'{server.url}/predict/deploy', data=iter([b'--x\r\n', b'chunked, no length']))  # a generator: chunked
    assert r.status_code == 411 and 'Content-Length' in r.json()['detail']
    assert requests.get(f'{server.url}/health').status_code == 200


def upload(server, files, name='mine', token=TOKEN):
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    return requests.post(f'{server.url}/upload', data={'name': name}, files=[('file', f) for f in files], headers=headers, timeout=120)


def onnx_with(tmp, **change):
    "A copy of the tiny pipeline's ONNX export with one thing changed: external data, or a graph that is not a detect head."
    import onnx
    from onnx import helper, TensorProto
    m = onnx.load(str(tmp/'model.onnx'))
    if change.get('external'):
        t = m.graph.initializer[0]; t.data_location = TensorProto.EXTERNAL; t.ClearField('raw_data')
        t.external_data.add(key='location', value='/etc/passwd')
    if change.get('not_detect'):
        g = helper.make_graph([helper.make_node('Identity', ['images'], ['out'])], 'g',
                              [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 3, 64, 64])])
        meta = {p.key: p.value for p in m.metadata_props}
        m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); helper.set_model_props(m, meta)
    return m.SerializeToString()


def test_uploads_are_checked_versioned_and_never_overwritten(server, deployed):
    tmp = deployed['tmp']; shutil.copy(deployed['onnx'], tmp/'model.onnx'); good = ('model.onnx', (tmp/'model.onnx').read_bytes())
    assert upload(server, [good], token=None).status_code == 401
    assert upload(server, [good], token='wrong').status_code == 403
    r = upload(server, [('best.pt', b'PK\x03\x04 a torch zip')])
    assert r.status_code == 415 and 'Pickles can execute arbitrary code' in r.json()['detail'] and 'format=onnx' in r.json()['detail']
    r = upload(server, [('model.onnx', onnx_with(tmp, external=True))])
    assert r.status_code == 422 and 'point to external files' in r.json()['detail']
    r = upload(server, [('model.onnx', onnx_with(tmp, not_detect=True))])
    assert r.status_code == 422 and 'is not a YOLOv8 detect head' in r.json()['detail']
    for bad in ('../evil', 'a/b', 'x y', '.hidden', 'deploy'):
        assert upload(server, [good], name=bad).status_code in (400, 409), bad
    assert not (tmp/'evil').exists() and not (tmp/'store/a').exists()
    with cf.ThreadPoolExecutor(2) as ex:  # two uploads of one name at once: two versions, neither lost
        answers = list(ex.map(lambda _: upload(server, [good]), range(2)))
    assert sorted(a.json()['version'] for a in answers) == [1, 2], [a.text for a in answers]
    assert sorted(p.name for p in (tmp/'store/mine').iterdir()) == ['1', '2']
    models = {m['name']: m for m in requests.get(f'{server.url}/models').json()}
    assert models['mine']['version'] == 2 and models['mine']['origin'] == 'upload' and models['mine']['backend'] == 'onnxruntime'
    assert post_image(server, deployed['images'][0].read_bytes(), model='mine').status_code == 200
    ir = [(f, (deployed['ir']/f).read_bytes()) for f in ('best.xml', 'best.bin', 'metadata.yaml')]
    r = upload(server, ir, name='mine-ir')
    assert r.status_code == 201 and (r.json()['backend'], r.json()['version']) == ('openvino', 1), r.text
    r = upload(server, ir[:2], name='mine-ir')  # an IR without Ultralytics' metadata.yaml: no input size, no class names
    assert r.status_code == 422 and 'model metadata: no class names' in r.json()['detail'], r.text
    assert not list((tmp/'store/.cache/.incoming').iterdir()), 'refused uploads leave nothing behind'
    assert all((tmp/f'store/mine/{v}/manifest.json').is_file() for v in (1, 2)), 'each version is complete: its manifest was written last'


def test_uploads_are_off_without_a_token(deployed, tmp_path):
    s = Server(tmp_path, deployed['deploy'], '--decode-threads', '1').wait_ready()
    try:
        r = upload(s, [('model.onnx', deployed['onnx'].read_bytes())])
        assert r.status_code == 403 and 'uploads are off' in r.json()['detail']
    finally: s.stop()


def test_metrics_count_exactly_what_was_sent(server, deployed):
    key = 'voc_yolo_http_requests_total{method="POST",route="/predict/{model_name}",status="200"}'
    before, images = metric(server, key), metric(server, 'voc_yolo_images_total{model="deploy"}')
    for _ in range(7): assert post_image(server, deployed['images'][0].read_bytes()).status_code == 200
    assert metric(server, key) - before == 7
    assert metric(server, 'voc_yolo_images_total{model="deploy"}') - images == 7
    assert metric(server, 'voc_yolo_inference_duration_seconds_count{model="deploy"}') >= 7  # all timed (buckets vary with load)
    assert metric(server, 'voc_yolo_models_loaded') >= 1


def test_a_flood_gets_503_not_an_unbounded_queue(deployed, tmp_path):
    import cv2
    big = cv2.imencode('.jpg', cv2.resize(cv2.imread(str(deployed['images'][0])), (1600, 1200)))[1].tobytes()
    s = Server(tmp_path, deployed['deploy'], '--decode-threads', '1', '--max-queue', '2').wait_ready()
    try:
        with cf.ThreadPoolExecutor(24) as ex:
            codes = list(ex.map(lambda _: post_image(s, big).status_code, range(48)))
        assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
        r = post_image(s, big)
        assert r.status_code == 200 and requests.get(f'{s.url}/health').status_code == 200
        assert metric(s, 'voc_yolo_rejected_total') == codes.count(503)
    finally: s.stop()


def set_confidence_to_zero(browser):
    "Move the page's slider to 0, as a user would; the label shows the value the next prediction sends."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.execute_script("const c = document.getElementById('conf'); c.value = 0; c.dispatchEvent(new Event('input'))")
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, 'conf-value').text == '0.00')


def test_the_page_shows_what_the_api_answers(server, deployed, browser):
    "Headless Chromium: choose a test image, the table's rows equal the JSON API's detections for it."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(server.url + '/')
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#model option'))
    set_confidence_to_zero(browser)
    img = deployed['images'][0]
    browser.find_element(By.ID, 'file').send_keys(str(img))
    WebDriverWait(browser, 20).until(lambda d: 'detections in' in d.find_element(By.ID, 'status').text)
    rows = browser.execute_script(  # read in one call: the table as it stands
        "return [...document.querySelectorAll('#detections tr')].map(tr => [...tr.cells].map(td => td.textContent))")
    api = post_image(server, img.read_bytes(), conf=0).json()['images'][0]['detections']
    assert len(rows) == len(api) > 0
    for row, d in zip(rows, api):
        assert row[1] == d['class_name'] and float(row[2]) == pytest.approx(d['confidence'], abs=6e-4), (row, d)
        assert [float(v) for v in row[3:]] == pytest.approx(d['box'], abs=0.06), (row, d)
    assert not [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert browser.execute_script("return document.getElementById('canvas').width") == 96


def test_class_names_of_an_upload_render_as_text(server, deployed, browser, tmp_path):
    "Stored XSS: a model uploaded with markup for class names; the page shows the names as text, and no script runs."
    import onnx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    evil = '<img src=x onerror="window.pwned = 1">'
    m = onnx.load(str(deployed['onnx']))
    onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, 'names': repr({i: evil for i in range(20)})})
    onnx.save(m, str(tmp_path/'evil.onnx'))
    r = requests.post(f'{server.url}/upload', data={'name': 'evil'}, files={'file': ('evil.onnx', (tmp_path/'evil.onnx').read_bytes())},
                      headers={'Authorization': f'Bearer {TOKEN}'}, timeout=120)
    assert r.status_code == 201 and r.json()['class_names'][0] == evil, r.text
    browser.get(server.url + '/')
    options = lambda d: [o.get_attribute('value') for o in d.find_elements(By.CSS_SELECTOR, '#model option')]
    WebDriverWait(browser, 20).until(lambda d: 'evil' in options(d))
    Select(browser.find_element(By.ID, 'model')).select_by_value('evil')
    set_confidence_to_zero(browser)
    browser.find_element(By.ID, 'file').send_keys(str(deployed['images'][0]))
    WebDriverWait(browser, 20).until(lambda d: 'detections in' in d.find_element(By.ID, 'status').text)
    names = browser.execute_script("return [...document.querySelectorAll('#detections tr')].map(tr => tr.cells[1].textContent)")
    assert names and set(names) == {evil}, names[:3]  # shown as the text it is
    assert browser.execute_script("return document.querySelectorAll('#detections img, #model img').length") == 0
    assert browser.execute_script("return window.pwned === undefined"), 'the onerror handler ran'
    # and were markup rendered, the Content-Security-Policy would not let its inline handler run
    errored = browser.execute_async_script(  # resolves once the image's error event has fired: its inline handler had its chance
        "const done = arguments[0]; document.body.insertAdjacentHTML('beforeend', '<img id=x2 src=x onerror=\"window.pwned2 = 1\">');"
        "document.getElementById('x2').addEventListener('error', () => done(true));")
    assert errored
    assert browser.execute_script("return window.pwned2 === undefined"), 'an inline handler ran despite the CSP'


def test_docs_work_offline_under_the_csp(server, browser):
    "/docs: Swagger UI from the package itself lists every route, fetches nothing from another origin, breaks no CSP rule."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get_log('browser')  # what earlier tests logged
    browser.get(server.url + '/docs')  # the browser has no network beyond loopback (conftest)
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '.opblock-summary-path')) >= 8)
    paths = {e.text.replace('\u200b', '') for e in browser.find_elements(By.CSS_SELECTOR, '.opblock-summary-path')}
    assert {'/predict/{model_name}', '/upload', '/models', '/ready', '/metrics'} <= paths, paths
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith(server.url) for u in loaded), loaded
    assert not [e for e in browser.get_log('browser') if e['level'] == 'SEVERE'], 'console errors (a CSP violation?)'
    csp = requests.get(f'{server.url}/docs', timeout=10).headers['content-security-policy']
    assert "script-src 'self';" in csp and 'unsafe-eval' not in csp, csp


@pytest.mark.parametrize('client', ['wrk', 'python'])
def test_bench_serve_decides_with_intervals_and_an_aa_control(deployed, client, tmp_path):
    """`make bench-serve` on the tiny model, one second per cell, 2 rounds, with either load generator: every setup (LitServe
    and BentoML too, with wrk) answers without errors, every comparison has its interval and a verdict, the JSON and the plot
    are written, and no server outlives it."""
    import sys
    from voc_yolo.verdict import decide
    if client == 'wrk' and not shutil.which('wrk'): pytest.fail('wrk is not installed (make wrk)')
    peers = 'auto' if client == 'wrk' else 'none'
    if peers == 'auto' and not all((ROOT/f'.cache/peers/{p}/bin/python').is_file() for p in ('litserve', 'bentoml')):
        pytest.fail('LitServe and BentoML are not installed: make peers')
    out = run(f"{sys.executable} benchmarks/bench_serve.py --model {deployed['deploy']} --images {deployed['images'][0].parent} "
              f"--seconds 1 --clients 1,2 --rounds 2 --max-minutes 0 --idle-seconds 1 --max-steal 1 --client {client} "
              f"--peers {peers} --out {tmp_path}", ROOT).stdout
    print(out)
    servers = ['(b) voc-yolo serve', '(c) seed: YOLO.predict'] + (['(d) LitServe', '(e) BentoML'] if peers == 'auto' else [])
    cells = ['(a) in process', 'one image alone', *[f'{k} @{c}' for k in servers for c in (1, 2)], '(b) voc-yolo serve @2 again']
    r = json.loads(next(tmp_path.glob('verdicts_*.json')).read_text())
    test_png = next(tmp_path.glob('throughput_*.png')).read_bytes()
    assert test_png.startswith(b'\x89PNG'), 'the plot is not a PNG'
    assert r['rounds_kept'] == 2 and sorted(r['rounds'][0]) == sorted(cells), (r['rounds_kept'], sorted(r['rounds'][0]))
    for rnd in r['rounds']:
        for cell, m in rnd.items():
            assert m['cpu_ms'] > 0 and m['rps'] > 0 and m['errors'] == 0, (cell, m)
        assert sorted(m['position'] for m in rnd.values()) == list(range(len(cells)))  # each cell once, in the drawn order
    rows = r['verdicts']['aa'] + r['verdicts']['comparisons']
    assert len(r['verdicts']['aa']) == 3 and len(r['verdicts']['comparisons']) == 3 + 2 * (len(servers) - 2), [x['name'] for x in rows]
    for x in r['verdicts']['comparisons']:
        assert x['low'] <= x['median'] <= x['high'] and x['n'] == 2, x
        want = 'INCONCLUSIVE' if x['metric'] in r['verdicts']['noisy'] else decide(x['low'], x['high'], x['target'], x['better'])
        assert x['verdict'] == want, x
        assert re.search(rf"^{re.escape(x['name'])} +[\d.]+ +\([\d.]+-[\d.]+\) +.+  {x['verdict']}", out, re.M), x['name']
    for k in ('(d) LitServe', '(e) BentoML'):
        assert (f'{k}: version ' in out) == (peers == 'auto') and (f'{k}: left out' in out) == (peers == 'none'), k
    assert re.search(r"idle CPU over 1 s, share of one core: \(b\) voc-yolo serve [\d.]+%.* -> \(b\) voc-yolo serve: (PASS|FAIL)", out)
    phases = out.split("(b)'s phases")[1].splitlines()
    assert phases[1].split()[:4] == ['clients', 'route', 'read', 'parse'] and 'infer' in phases[1], phases  # per client count
    assert float(phases[2].split()[phases[1].split().index('infer')]) > 0, phases
    import psutil
    mine = lambda cmd: str(tmp_path) in cmd or '.cache/peers/' in cmd  # (b) and (c) name the output folder; the peers' workers their venv
    leftover = [p.info['cmdline'] for p in psutil.process_iter(['cmdline']) if mine(' '.join(p.info['cmdline'] or []))]
    assert not leftover, f'servers left running: {leftover}'
