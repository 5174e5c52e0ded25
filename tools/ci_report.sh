#!/usr/bin/env bash
# A training run's report against a base revision, for the train-gpu workflow (which runs it in the train image):
# the metrics and params diffs as Markdown, every plot of dvc.yaml old against new as DVC renders it (HTML), and each
# plot's Vega-Lite spec (one target per `--show-vega`, as DVC 3 asks).
#   tools/ci_report.sh main report    ->  report/report.md, report/plots/index.html, report/vega/<plot>.json
set -euo pipefail
base=${1:?usage: tools/ci_report.sh BASE_REV OUTDIR}
out=${2:?usage: tools/ci_report.sh BASE_REV OUTDIR}
mkdir -p "$out/vega"
{
  echo "### Metrics against $base"; echo
  dvc metrics diff --md "$base"; echo
  echo "### Params against $base"; echo
  dvc params diff --md "$base"; echo
  echo "Plots, $base against this run: plots/index.html in the run's \`report\` artifact."
} > "$out/report.md"
dvc plots diff "$base" --out "$out/plots" > /dev/null
# the plot ids are the top-level `plots:` of dvc.yaml
for plot in $(python3 -c 'import yaml; print(*(next(iter(p)) for p in yaml.safe_load(open("dvc.yaml"))["plots"]))'); do
  dvc plots diff "$base" --targets "$plot" --show-vega > "$out/vega/$plot.json"
done
echo "report: $out/report.md, $(find "$out/vega" -name '*.json' | wc -l) plots"
