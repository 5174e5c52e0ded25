"""Render nbs/index.ipynb to README.md without Quarto: nbdev's notebook processing, then nbconvert's markdown exporter.

`nbdev_readme` needs Quarto, which cannot be installed everywhere (no internet); this gives the same README, with the
figures table filled from the committed metrics files (`voc_yolo.report.headline_figures`).
Usage: python tools/make_readme.py [--check]   (--check: exit 1 if README.md is stale, write nothing)
"""
import sys
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter
from nbdev.config import get_config
from nbdev.process import NBProcessor
from nbdev.processors import clean_magics, filter_stream_, hide_, hide_line, populate_language, rm_export, strip_ansi

HEADER = "<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n"


def render_readme(nb_path: Path) -> str:
    "The README text for the notebook at `nb_path`."
    proc = NBProcessor(nb_path, procs=[populate_language, clean_magics, rm_export, hide_, hide_line,
                                        filter_stream_, strip_ansi])
    proc.process()
    nb = nbformat.from_dict(proc.nb)
    for i, c in enumerate(nb.cells): c['id'] = f'cell-{i}'
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nb)
    return HEADER + with_figures(body.strip()) + "\n"


def with_figures(text: str) -> str:
    "The text with its `<!-- figures -->` line replaced by the committed run's figures, read from the metrics files."
    from voc_yolo.core import load_params, params_path
    from voc_yolo.report import ReportParams, headline_figures
    return text.replace('<!-- figures -->', headline_figures(load_params(params_path('report'), ReportParams)))


def main(check: bool = False) -> int:
    cfg = get_config()
    root = cfg.config_path
    text = render_readme(cfg.nbs_path / cfg.get('readme_nb', 'index.ipynb'))
    readme = root / 'README.md'
    if check:
        if not readme.exists() or readme.read_text() != text:
            print("README.md is stale: run `make readme` and commit it", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main('--check' in sys.argv[1:]))
