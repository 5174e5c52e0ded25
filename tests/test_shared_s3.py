"""The model store's S3 paths against moto's S3 server, in the suite: exclusive version claims (also when replicas race),
fetch and check into the cache, the ETag scan, retire, retention, and a version written past the upload checks."""
import hashlib
import json
import shutil
import threading
import uuid

import pytest

from helpers import BUCKET
from voc_yolo.serve.shared import CLAIM, MANIFEST, SharedStore, StoreError, collect_cache, fetch, prune, publish, retire
from voc_yolo.serve.testing import untrained_onnx


@pytest.fixture
def store(s3, tmp_path, monkeypatch):
    "A fresh prefix of moto's bucket as a model store, with its own cache folder."
    monkeypatch.setenv('AWS_ENDPOINT_URL', s3)
    return SharedStore(f's3://{BUCKET}/store-{uuid.uuid4().hex[:8]}', cache_dir=tmp_path/'cache')


@pytest.fixture
def upload(tmp_path):
    "A folder as an upload leaves it: a real (untrained) YOLOv8n that passes the checks."
    src = tmp_path/'upload'; src.mkdir(); shutil.copy(untrained_onnx(), src/'model.onnx')
    return src


def test_claims_are_exclusive_on_s3_even_when_replicas_race(store, upload):
    assert (store.local, store.scan(), store.exclusive()) == (False, {}, True)
    got, threads = [], [threading.Thread(target=lambda: got.append(publish(store, 'mine', upload))) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert sorted(got) == [1, 2, 3, 4], got  # four concurrent publishes, four numbers
    seen = store.scan()
    assert sorted(seen['mine']) == [1, 2, 3, 4] and all(seen['mine'].values()), seen  # each with its manifest's ETag
    with pytest.raises(FileExistsError): store._create(store.path('mine', 1, CLAIM), b'x')  # a taken number stays taken


def test_fetch_checks_into_the_cache_and_retire_stops_serving(store, upload, tmp_path):
    assert publish(store, 'mine', upload) == 1 and publish(store, 'mine', upload) == 2
    etag = store.scan()['mine'][2]
    assert fetch(store, 'mine', 2) == tmp_path/'cache/mine/2'
    assert (tmp_path/'cache/mine/2/model.onnx').read_bytes() == (upload/'model.onnx').read_bytes()
    assert not list((tmp_path/'cache/.part').iterdir()), 'no partial download left behind'
    retire(store, 'mine', 2)
    assert sorted(store.scan()['mine']) == [1] and etag
    assert publish(store, 'mine', upload) == 3  # a retired number is never reused


def test_retention_keeps_the_newest_versions_and_collects_claims_and_downloads(store, upload, tmp_path):
    "On S3 there are no folders: prune deletes objects (manifest first), reads claim ages from LastModified, and lists once."
    for _ in range(4): publish(store, 'mine', upload)
    retire(store, 'mine', 3)
    store._create(store.path('mine', 5, CLAIM), b'{}')  # an upload in progress above the newest: kept
    for v in (1, 2, 4): fetch(store, 'mine', v)
    assert prune(store, 'mine', 2) == [1]  # 2 and 4 are the newest complete; 3 (retired) and 5 are above the oldest kept
    assert publish(store, 'mine', upload) == 6  # numbers are never reused
    assert prune(store, 'mine', 2) == [2]  # 3, retired a moment ago, waits its grace (it could be an upload still writing)
    assert prune(store, 'mine', 2, grace_s=0) == [3]
    assert sorted(store.scan()['mine']) == [4, 6] and store.taken('mine') == [4, 5, 6]
    store.fs.invalidate_cache()
    assert not store.fs.exists(store.path('mine', 1, 'model.onnx')) and not store.fs.exists(store.path('mine', 3, CLAIM))
    assert collect_cache(store, {('mine', 4)}) == 2 and sorted(p.name for p in (tmp_path/'cache/mine').iterdir()) == ['4']


def test_a_version_written_past_the_upload_checks_is_refused_on_fetch(store, upload):
    "Anyone who can write to the bucket bypasses the upload route: fetch checks again (a pickle named .onnx is refused)."
    data = b'\x80\x04pickle'  # sizes and hashes right: only the contents are wrong
    store.fs.pipe_file(store.path('evil', 1, 'model.onnx'), data)
    manifest = {'name': 'evil', 'version': 1, 'files': {'model.onnx': {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}}}
    store.fs.pipe_file(store.path('evil', 1, MANIFEST), json.dumps(manifest).encode())
    with pytest.raises(StoreError, match='pickle'): fetch(store, 'evil', 1)


def test_a_store_without_conditional_writes_refuses_publish(store, upload, monkeypatch):
    "An S3-compatible endpoint that ignores If-None-Match (older MinIO, Ceph RGW): publish says why and writes nothing."
    monkeypatch.setattr(SharedStore, '_create', lambda self, path, data: self.fs.pipe_file(path, data))  # an overwriting store
    with pytest.raises(StoreError, match='ignores conditional writes'): publish(store, 'mine', upload)
    assert store.scan() == {}
