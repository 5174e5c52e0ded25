"""(d) of benchmarks/bench_serve.py: the project's Predictor behind LitServe, with LitServe's own batching.

The same decode, letterbox, inference and NMS code as `voc-yolo serve` (voc_yolo.runtime), so that only the serving
layer differs. Settings as LitServe's docs advise for a CPU model: one worker owning every core, dynamic batching up to
PEER_MAX_BATCH images with a batch_timeout of a few milliseconds, request timing off.
Run in its own environment (make peers):
  PEER_MODEL=models/deploy PEER_PORT=8002 .cache/peers/litserve/bin/python benchmarks/peer_litserve.py
"""
import os
import time

import litserve as ls
import numpy as np

from voc_yolo.runtime import Predictor, decode_image, single_threaded_opencv


class Detect(ls.LitAPI):
    def setup(self, device):
        single_threaded_opencv()  # as in `voc-yolo serve`: the inference threads own the cores
        self.pred = Predictor(os.environ['PEER_MODEL'], threads=int(os.environ.get('PEER_THREADS', os.cpu_count())), streams=1).warmup()

    def decode_request(self, request):  # multipart/form-data arrives as Starlette's form; the field is `file`, as for voc-yolo serve
        return self.pred.prepare(decode_image(request['file'].file.read()))

    def batch(self, prepared): return prepared  # a list of Prepared: their tensors are stacked in predict

    def predict(self, prepared):
        t = time.perf_counter(); out = self.pred.infer(np.concatenate([p.x for p in prepared])); ms = (time.perf_counter() - t) * 1e3
        return [self.pred.finish(o, p, ms / len(prepared)) for o, p in zip(out, prepared)]

    def unbatch(self, outputs): return outputs

    def encode_response(self, output): return output


if __name__ == '__main__':
    api = Detect(max_batch_size=int(os.environ.get('PEER_MAX_BATCH', 8)), batch_timeout=float(os.environ.get('PEER_BATCH_TIMEOUT', 0.002)),
                 api_path='/predict/deploy')
    ls.LitServer(api, accelerator='cpu', devices=1, workers_per_device=1, track_requests=False).run(
        port=int(os.environ.get('PEER_PORT', 8002)), host='127.0.0.1', log_level='warning', generate_client_file=False)
