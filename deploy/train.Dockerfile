# The pipeline on a GPU runner: dvc repro / dvc exp run with papermill stage notebooks, on Python 3.11 with the lock's
# torch. That torch is PyPI's CUDA 13 build, whose CUDA and cuDNN libraries come as nvidia-* wheels of the lock, so the
# base needs no CUDA of its own; the host needs an NVIDIA driver for CUDA 13 (>= 580) and the NVIDIA container toolkit.
# The image holds the dependencies only (voc_yolo[pipeline,remote]: no JupyterLab, linters or test tools). The workflow
# mounts the checkout at /work (PYTHONPATH puts it first) and runs as the runner's uid, with HOME in /tmp/home:
#   docker build -f deploy/train.Dockerfile --target train -t voc-yolo/train .
#   docker run --gpus all --shm-size 8g --user "$(id -u):$(id -g)" -v "$PWD:/work" voc-yolo/train dvc repro
# Behind a proxy or a private CA, pass the index and the CA as BuildKit secrets, as for the serve image
# (python tools/pip_secrets.py prints the flags).
ARG BASE_IMAGE=python:3.11-slim-bookworm
# checkov:skip=CKV_DOCKER_7: the base is the BASE_IMAGE build arg, whose default above is a pinned tag
FROM ${BASE_IMAGE} AS train
ARG DEBIAN_FRONTEND=noninteractive
# git for DVC, libGL and GLib for opencv-python (Ultralytics), fonts for Matplotlib. Their versions are those of the
# base image's Debian release, which BASE_IMAGE pins; Python packages are pinned by constraints.txt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgl1 libglib2.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first, from the lock and the project's metadata only (a stand-in package takes voc_yolo's place and is
# removed again), so a code change never rebuilds this multi-GB layer: the code comes from the mounted checkout.
COPY settings.ini setup.py README.md constraints.txt /tmp/voc_yolo/
RUN --mount=type=secret,id=pip_index_url --mount=type=secret,id=pip_cert --mount=type=bind,source=deploy/pip-secrets.sh,target=/pip-secrets.sh \
    . /pip-secrets.sh && mkdir /tmp/voc_yolo/voc_yolo && touch /tmp/voc_yolo/voc_yolo/__init__.py \
    && python -m pip install --no-cache-dir -c /tmp/voc_yolo/constraints.txt '/tmp/voc_yolo[pipeline,remote]' \
    && python -m pip uninstall --yes voc_yolo \
    && python -m ipykernel install --sys-prefix --name voc_yolo --display-name "Python (voc_yolo)" \
    && rm -rf /tmp/voc_yolo \
    && mkdir -m 1777 /tmp/home
# W&B is offline unless the run says otherwise (the GPU workflow sets WANDB_MODE=online when it has a WANDB_API_KEY)
ENV PYTHONPATH=/work HOME=/tmp/home WANDB_MODE=offline YOLO_AUTOINSTALL=false
WORKDIR /work
USER 1001:1001
HEALTHCHECK NONE
CMD ["dvc", "repro"]
