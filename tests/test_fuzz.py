"""Property tests (Hypothesis) of what parses client input: multipart bodies, image headers and decoding, model metadata,
names; and the whole app under random requests. No input may raise anything but the refusal it documents, or give a 500.
The suite runs a small budget (profile `ci`); `make fuzz` runs profile `fuzz` (HYPOTHESIS_PROFILE=fuzz)."""
import io
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from voc_yolo.runtime import ImageError, decode_image
from voc_yolo.serve.limits import Refusal, check_images
from voc_yolo.serve.multipart import multipart_files
from voc_yolo.serve.uploads import NAME, UploadError, check_metadata_yaml, check_model_meta, check_name

settings.register_profile('ci', max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('fuzz', max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))


def image_bytes(fmt, w, h):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(b, fmt); return b.getvalue()


SEEDS = [image_bytes(f, 17, 9) for f in ('JPEG', 'PNG', 'WEBP', 'BMP', 'TIFF', 'GIF')]


@st.composite
def mutated(draw):
    "A real image of some format with a few bytes overwritten, or cut short, or random bytes."
    if draw(st.booleans()): return draw(st.binary(max_size=256))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))])


@given(mutated())
def test_an_image_is_decoded_or_refused_with_a_status(data):
    try:
        header, = check_images([('x', data)], max_pixels=10_000, max_request_pixels=20_000)
        img = decode_image(data, 'x', 10_000, header=header)  # as the service does: the header read once
        assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] * img.shape[1] <= 10_000
    except (Refusal, ImageError) as e:
        assert 400 <= e.status < 500 and str(e)


PART = st.builds(lambda name, filename, data: (name, filename, data), st.sampled_from(['file', 'f', 'FILE', '']),
                 st.one_of(st.none(), st.text(max_size=12)), st.binary(max_size=64))


@st.composite
def multipart_bodies(draw):
    "A well-formed body of random parts, often damaged afterwards."
    b = draw(st.sampled_from(['xx', 'a-b', '0' * 70]))
    body = b''
    for name, filename, data in draw(st.lists(PART, max_size=8)):
        fn = '' if filename is None else f'; filename="{filename}"'
        body += f'--{b}\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n'.encode('utf-8', 'surrogatepass') + data + b'\r\n'
    body += f'--{b}--\r\n'.encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body))); body = body[:cut] + draw(st.binary(max_size=16)) + body[cut:]
    return body, draw(st.sampled_from([f'multipart/form-data; boundary={b}', 'multipart/form-data', 'text/plain', '']))


@given(multipart_bodies(), st.integers(1, 4), st.integers(1, 6), st.integers(1, 64))
def test_a_multipart_body_is_parsed_within_budget_or_refused(body_ct, max_files, max_parts, max_part_bytes):
    body, ct = body_ct
    try: files = multipart_files(body, ct, max_files=max_files, max_parts=max_parts, max_part_bytes=max_part_bytes)
    except Refusal as e: assert 400 <= e.status < 500 and str(e); return
    assert 0 < len(files) <= max_files and all(len(d) <= max_part_bytes for _, d in files)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_metadata_yaml_is_read_or_refused(data):
    try: assert isinstance(check_metadata_yaml(data), dict)
    except UploadError as e: assert e.status == 422 and str(e)


META = st.recursive(st.none() | st.booleans() | st.integers(-10, 10_000) | st.text(max_size=70),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.integers(0, 5) | st.text(max_size=5), c, max_size=5),
                    max_leaves=20)


@given(st.dictionaries(st.sampled_from(['names', 'imgsz', 'stride']), META | META.map(repr)))
def test_model_metadata_is_bounded_or_refused(meta):
    try: out = check_model_meta(meta)
    except UploadError as e: assert e.status == 422 and str(e); return
    assert 0 < len(out['names']) <= 1000 and all(v.isprintable() and 0 < len(v) <= 64 for v in out['names'].values())
    assert all(32 <= s <= 4096 for s in out['imgsz'])


@given(st.text(max_size=80))
def test_a_model_name_is_a_safe_folder_name_or_refused(name):
    try: ok = check_name(name)
    except UploadError as e: assert e.status == 400; return
    assert NAME.fullmatch(ok) and '/' not in ok and '\n' not in ok and not ok.startswith(('.', '-', '_'))


@pytest.fixture(scope='module')
def client(deployed, tmp_path_factory):
    from voc_yolo.serve.testing import ready_client
    store = tmp_path_factory.mktemp('fuzz')/'store'
    c = ready_client(deployed['deploy'], store, token='t', max_pixels=100_000, max_request_pixels=200_000)
    yield c
    c.__exit__(None, None, None); shutil.rmtree(store, ignore_errors=True)


@given(multipart_bodies(), st.sampled_from(['/predict/deploy', '/predict', '/predict/deploy/image', '/predict/n%00pe', '/upload']),
       st.sampled_from([{}, {'Authorization': 'Bearer t'}, {'Authorization': 'Bearer \x01'}]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_service_answers_random_requests_with_a_4xx_never_a_500(client, body_ct, path, auth):
    body, ct = body_ct
    r = client.post(path, content=body, headers={'Content-Type': ct, **auth} if ct else auth)
    assert r.status_code < 500 and r.json()['detail'], (r.status_code, r.text[:300])
    assert client.get('/health').status_code == 200
