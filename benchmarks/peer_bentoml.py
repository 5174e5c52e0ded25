"""(e) of benchmarks/bench_serve.py: the project's Predictor behind BentoML, with BentoML's adaptive batching.

The same decode, letterbox, inference and NMS code as `voc-yolo serve` (voc_yolo.runtime), so that only the serving
layer differs. Settings as BentoML's docs advise for a CPU model: one worker (the model's threads own the cores), a
batchable API whose dispatcher forms batches of up to PEER_MAX_BATCH images; max_latency_ms 10 s, since BentoML refuses
(503) a request it expects to answer later than that, and at 640 px 16 clients queue for about a second.
Run in its own environment (make peers):
  PEER_MODEL=models/deploy .cache/peers/bentoml/bin/bentoml serve peer_bentoml:Detect --working-dir benchmarks --port 8003
"""
import os
import time
from pathlib import Path

import bentoml
import numpy as np

from voc_yolo.runtime import Predictor, decode_image, single_threaded_opencv


@bentoml.service(workers=1, traffic={'timeout': 60}, logging={'access': {'enabled': False}})  # no log line per request
class Detect:
    def __init__(self):
        single_threaded_opencv()  # as in `voc-yolo serve`: the inference threads own the cores
        self.pred = Predictor(os.environ['PEER_MODEL'], threads=int(os.environ.get('PEER_THREADS', os.cpu_count())), streams=1).warmup()

    @bentoml.api(route='/predict/deploy', batchable=True, max_batch_size=int(os.environ.get('PEER_MAX_BATCH', 8)), max_latency_ms=10_000)
    def predict(self, file: list[Path]) -> list[dict]:  # the multipart field `file`, as for voc-yolo serve
        prepared = [self.pred.prepare(decode_image(f.read_bytes())) for f in file]
        t = time.perf_counter(); out = self.pred.infer(np.concatenate([p.x for p in prepared])); ms = (time.perf_counter() - t) * 1e3
        return [self.pred.finish(o, p, ms / len(prepared)) for o, p in zip(out, prepared)]
