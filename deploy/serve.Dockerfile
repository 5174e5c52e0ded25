# The inference service: voc_yolo[serve] (no torch, no ultralytics) on Python 3.11, run as a non-root user.
# Build (make docker-serve): the Python packages come from .cache/wheelhouse, built on the host by `make wheelhouse`
# against constraints.txt, and are installed with --no-index: the build needs no network inside the container.
#   docker build -f deploy/serve.Dockerfile --target serve -t voc-yolo/serve .             # mount the model at run time
#   docker build -f deploy/serve.Dockerfile --target serve-with-model -t voc-yolo/serve .  # models/deploy baked in
# Run: docker run -p 8000:8000 -v "$PWD/models/deploy:/models/deploy:ro" voc-yolo/serve
# Configure with VOC_YOLO_* variables only (voc-yolo serve --help lists them), e.g. -e VOC_YOLO_TOKEN=... -e VOC_YOLO_THREADS=2.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# checkov:skip=CKV_DOCKER_7: the base is the BASE_IMAGE build arg, whose default above is a pinned tag
FROM ${BASE_IMAGE} AS serve
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VOC_YOLO_DEPLOY=/models/deploy \
    VOC_YOLO_MODELS=/models/store
# The wheels are bind-mounted for this one step, so they never become a layer of the image. What the service never
# loads goes in the same step (measured on the 927 MB first build): bytecode (80 MB; imports compile in memory),
# pip and setuptools (23 MB), the packages' test suites (66 MB), type stubs and C headers, and OpenVINO's GPU and
# NPU plugins and its TensorFlow/PaddlePaddle/PyTorch/JAX/GGUF frontends (66 MB: the service reads IR on the CPU).
RUN --mount=type=bind,source=.cache/wheelhouse,target=/wheels \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-compile --no-index --find-links /wheels 'voc_yolo[serve]' \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && SP=/opt/venv/lib/python3.11/site-packages OV=/opt/venv/lib/python3.11/site-packages/openvino \
    && find "$SP" -type d -name tests -prune -exec rm -rf {} + \
    && find "$SP" -name '*.pyi' -delete \
    && rm -rf "$SP/onnx/backend/test" "$OV/include" "$OV/libs/libopenvino_intel_gpu_plugin.so" "$OV/libs/libopenvino_intel_npu_plugin.so" \
              "$OV"/libs/libopenvino_paddle_frontend.so.* "$OV"/libs/libopenvino_tensorflow_frontend.so.* \
              "$OV"/libs/libopenvino_tensorflow_lite_frontend.so.* "$OV"/libs/libopenvino_pytorch_frontend.so.* \
              "$OV"/libs/libopenvino_jax_frontend.so.* "$OV"/libs/libopenvino_gguf_frontend.so.* \
    && useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin voc \
    && mkdir -p /models/store /srv && chown voc /models/store /srv
USER 10001
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["voc-yolo", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM serve AS serve-with-model
COPY --chown=10001 models/deploy /models/deploy
COPY --chown=10001 models/deploy.json /models/deploy.json
