# The inference service: voc_yolo[serve] (no torch, no ultralytics) on Python 3.11, run as a non-root user.
# Build: no host preparation; a builder stage installs the locked packages (constraints.txt) from the package index:
#   docker build -f deploy/serve.Dockerfile --target serve -t voc-yolo/serve .             # mount the model at run time
#   docker build -f deploy/serve.Dockerfile --target serve-with-model -t voc-yolo/serve .  # models/deploy baked in
# Offline instead (make docker-serve WHEELS=wheelhouse): the packages come from .cache/wheelhouse, built on the host by
# `make wheelhouse`, and the build needs no network at all:
#   docker build --network=none --build-arg WHEELS=wheelhouse -f deploy/serve.Dockerfile --target serve .
# An index behind a proxy or a private CA (make docker-serve reads the host's pip configuration): pass them as BuildKit
# secrets, never as layers: --secret id=pip_index_url,env=PIP_INDEX_URL --secret id=pip_cert,src=/path/to/ca.pem
# Run: docker run -p 8000:8000 -v "$PWD/models/deploy:/models/deploy:ro" voc-yolo/serve
# Configure with VOC_YOLO_* variables only (voc-yolo serve --help lists them), e.g. -e VOC_YOLO_TOKEN=... -e VOC_YOLO_THREADS=2.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# where the Python packages come from: index (the builder stage below) or wheelhouse (.cache/wheelhouse, offline)
ARG WHEELS=index

# checkov:skip=CKV_DOCKER_7: the base is the BASE_IMAGE build arg, whose default above is a pinned tag
FROM ${BASE_IMAGE} AS venv-index
# Dependencies first, from the lock and the project's metadata only (a stand-in package takes voc_yolo's place), so a
# code change rebuilds only the last, small layer. The index address and CA come from BuildKit secrets when given.
COPY settings.ini setup.py README.md constraints.txt /src/
RUN --mount=type=secret,id=pip_index_url --mount=type=secret,id=pip_cert --mount=type=bind,source=deploy/pip-secrets.sh,target=/pip-secrets.sh \
    . /pip-secrets.sh && python3 -m venv /opt/venv && mkdir /src/voc_yolo && touch /src/voc_yolo/__init__.py \
    && /opt/venv/bin/pip install --no-cache-dir --no-compile -c /src/constraints.txt '/src[serve]' \
    && /opt/venv/bin/pip uninstall --yes --quiet voc_yolo && rm -rf /src/voc_yolo /src/build /src/*.egg-info
COPY voc_yolo /src/voc_yolo
# built as a wheel (its build backend comes from the index), as the wheelhouse has it
RUN --mount=type=secret,id=pip_index_url --mount=type=secret,id=pip_cert --mount=type=bind,source=deploy/pip-secrets.sh,target=/pip-secrets.sh \
    . /pip-secrets.sh && /opt/venv/bin/pip install --no-cache-dir --no-compile --no-deps --use-pep517 /src

FROM ${BASE_IMAGE} AS venv-wheelhouse
# The wheels are bind-mounted for this one step, so they never become a layer
RUN --mount=type=bind,source=.cache/wheelhouse,target=/wheels \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-compile --no-index --find-links /wheels 'voc_yolo[serve]'

# hadolint ignore=DL3006
FROM venv-${WHEELS} AS venv
# What the service never loads (measured on the 927 MB first build): bytecode (80 MB; imports compile in memory),
# pip and setuptools (23 MB), the packages' test suites (66 MB), type stubs and C headers, and OpenVINO's GPU and
# NPU plugins and its TensorFlow/PaddlePaddle/PyTorch/JAX/GGUF frontends (66 MB: the service reads IR on the CPU).
RUN /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && SP=/opt/venv/lib/python3.11/site-packages OV=/opt/venv/lib/python3.11/site-packages/openvino \
    && find "$SP" -type d -name tests -prune -exec rm -rf {} + \
    && find "$SP" -name '*.pyi' -delete \
    && rm -rf "$SP/onnx/backend/test" "$OV/include" "$OV/libs/libopenvino_intel_gpu_plugin.so" "$OV/libs/libopenvino_intel_npu_plugin.so" \
              "$OV"/libs/libopenvino_paddle_frontend.so.* "$OV"/libs/libopenvino_tensorflow_frontend.so.* \
              "$OV"/libs/libopenvino_tensorflow_lite_frontend.so.* "$OV"/libs/libopenvino_pytorch_frontend.so.* \
              "$OV"/libs/libopenvino_jax_frontend.so.* "$OV"/libs/libopenvino_gguf_frontend.so.*

FROM ${BASE_IMAGE} AS serve
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VOC_YOLO_DEPLOY=/models/deploy \
    VOC_YOLO_MODELS=/models/store
RUN useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin voc \
    && mkdir -p /models/store /srv && chown voc /models/store /srv
COPY --from=venv /opt/venv /opt/venv
USER 10001
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["voc-yolo", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM serve AS serve-with-model
COPY --chown=10001 models/deploy /models/deploy
COPY --chown=10001 models/deploy.json /models/deploy.json
