#!/usr/bin/env bash
# The serving frameworks `make bench-serve` compares `voc-yolo serve` with, each in a venv of its own under .cache/peers/.
# The project's packages (numpy, OpenVINO, OpenCV, voc_yolo itself) are seen through a .pth file, so every server runs
# the same decode, letterbox, inference and NMS code; the peer and whatever it pins differently are installed in front of
# them, and nothing in .venv changes. Usage (make peers): tools/peers.sh litserve==0.2.19 bentoml==1.4.40
set -euo pipefail
project_site=$(python -c 'import site; print(site.getsitepackages()[0])')  # .venv's: make puts .venv/bin first on PATH
for spec in "$@"; do
  name=${spec%%==*}; dir=.cache/peers/$name
  if [ -x "$dir/bin/python" ] && [ "$("$dir/bin/python" -P -c "import voc_yolo.runtime, $name; print($name.__version__)" 2>/dev/null)" = "${spec#*==}" ]; then
    echo "$dir: $spec already"; continue
  fi
  rm -rf "$dir"
  python -m venv --without-pip "$dir"
  # addsitedir, not a bare path: .venv's own .pth files (voc_yolo's editable install) are read too
  echo "import site; site.addsitedir('$project_site')" > "$("$dir/bin/python" -c 'import site; print(site.getsitepackages()[0])')/_voc_yolo_project.pth"
  python -m pip --python "$dir/bin/python" install -q "$spec"
  echo "$dir: $spec"
done
