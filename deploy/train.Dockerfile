# The pipeline on a GPU runner: dvc repro / dvc exp run with papermill stage notebooks, on an official PyTorch CUDA
# runtime image. It holds the dependencies only; the workflow mounts the checkout and installs it with --no-deps.
#   docker build -f deploy/train.Dockerfile --target train -t voc-yolo/train .
#   docker run --gpus all --shm-size 8g -v "$PWD:/work" -w /work voc-yolo/train sh -c 'pip install --no-deps -e . && dvc repro'
# The base's own torch and torchvision are kept (constraints.txt pins the CPU machines' builds, so they are left out).
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
# checkov:skip=CKV_DOCKER_7: the base is the BASE_IMAGE build arg, whose default above is a pinned tag
# checkov:skip=CKV_DOCKER_3: the job installs the bind-mounted checkout into the image's Python and writes DVC outputs
#   into it; it runs as root until the GPU workflow passes the runner's uid (--user), which then needs a writable HOME
FROM ${BASE_IMAGE} AS train
ARG DEBIAN_FRONTEND=noninteractive
# git for DVC, libGL and GLib for opencv-python (Ultralytics), fonts for Matplotlib. Their versions are those of the
# base image's Ubuntu release, which BASE_IMAGE pins; Python packages are pinned by constraints.txt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgl1 libglib2.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY settings.ini setup.py constraints.txt README.md /tmp/voc_yolo/
COPY voc_yolo /tmp/voc_yolo/voc_yolo
# everything voc_yolo[pipeline] and [dev] need, at the locked versions, then voc_yolo itself is removed again
RUN grep -vE '^(torch|torchvision)==' /tmp/voc_yolo/constraints.txt > /tmp/constraints.txt \
    && python -m pip install --no-cache-dir -c /tmp/constraints.txt '/tmp/voc_yolo[pipeline,dev]' \
    && python -m pip uninstall --yes voc_yolo \
    && rm -rf /tmp/voc_yolo /tmp/constraints.txt
ENV WANDB_MODE=offline YOLO_AUTOINSTALL=false
WORKDIR /work
HEALTHCHECK NONE
CMD ["dvc", "repro"]
