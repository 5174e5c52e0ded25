"""The nbdev docs site up to Quarto: config valid and naming pages that exist, nbdev's processing of every notebook,
`make docs` without Quarto."""
import os
import shutil

import yaml

from helpers import ROOT, run


def test_docs_config_names_pages_that_exist():
    quarto = yaml.safe_load((ROOT/'nbs/_quarto.yml').read_text())
    assert quarto['project']['type'] == 'website' and set(quarto['metadata-files']) == {'nbdev.yml', 'sidebar.yml'}
    for item in quarto['website']['navbar']['left']: assert (ROOT/'nbs'/item['href']).is_file(), item
    nbdev_yml = yaml.safe_load((ROOT/'nbs/nbdev.yml').read_text())
    assert nbdev_yml['website']['title'] == 'voc_yolo' and nbdev_yml['project']['output-dir'] == '_docs'
    def pages(items):  # a Quarto glob (a string with a wildcard) names every notebook it matches, recursively
        for it in [items] if isinstance(items, str) else items:
            if isinstance(it, dict): yield from pages(it['contents'])
            elif '*' in it: yield from (str(f.relative_to(ROOT/'nbs')) for f in sorted((ROOT/'nbs').rglob(it)))
            else: yield it
    listed = list(pages(yaml.safe_load((ROOT/'nbs/sidebar.yml').read_text())['website']['sidebar']['contents']))
    for page in listed: assert (ROOT/'nbs'/page).is_file(), page
    library = {p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb')}
    assert library <= set(listed), f'notebooks missing from the sidebar: {library - set(listed)}'
    assert len(library) > 40 and listed.count('00_core.ipynb') == 1, listed  # the glob matched the library, once


def test_the_docs_build_runs_no_test_cell():
    """nbdev's docs processing runs every code cell holding an import (exec_show_docs): a test cell with an import among its
    code would train or export again in every docs build. Imports belong in the notebook's import cell."""
    import ast
    import nbformat
    skip = ('#| export', '#| exporti', '#| exports', '#| default_exp', '#| eval: false', '#| exec_doc')
    mixed = []
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        for i, c in enumerate(nbformat.read(nb, 4).cells):
            if c.cell_type != 'code' or any(d in c.source for d in skip) or 'nbdev_export()' in c.source: continue
            tree = ast.parse(c.source)
            imports = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
            if imports and not all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body): mixed.append(f'{nb.name} cell {i}')
    assert not mixed, f'test cells that the docs build would run (move their imports to the import cell): {mixed}'


def test_nbdev_processes_every_notebook_for_quarto(repo_copy):
    "What `nbdev_docs` does before it calls Quarto: sidebar, module index, and nbdev's processors (show_doc included)."
    code = ('from nbdev.serve import proc_nbs; from nbdev.doclinks import _build_modidx; _build_modidx(); '
            'print(proc_nbs("nbs", n_workers=2, force=True))')
    scratch = repo_copy.parent/'scratch'; scratch.mkdir()  # nbdev runs every cell that imports: their mkdtemp() folders land here
    run(f'python -c \'{code}\'', repo_copy, measured=False, env={**os.environ, 'TMPDIR': str(scratch)})  # measured by their own tests
    proc = repo_copy/'_proc'
    for nb in (repo_copy/'nbs').glob('*.ipynb'): assert (proc/nb.name).is_file(), nb.name
    import nbformat
    for nb, fns in (('03_train', ('resolve_model', 'train_args', 'resumable_checkpoint', 'train')), ('03a_weights', ('resolve_device',)),
                    ('10_serve_settings', ('Settings', 'load_settings')), ('10p_serve_predictions', ('Predictions', 'Admission')),
                    ('10h_serve_predict', ('predict',))):
        page = nbformat.read(proc/f'{nb}.ipynb', 4)
        text = '\n'.join(c.source for c in page.cells) + '\n'.join(str(o) for c in page.cells for o in c.get('outputs', []))
        for fn in fns: assert f'### {fn}' in text, f'{nb}: no show_doc entry for {fn}'


def test_make_docs_builds_the_site_or_says_how_to_install_quarto():
    "With Quarto, `make docs` builds the site (_docs/, git-ignored); without it, it fails saying where Quarto comes from."
    r = run('make docs', ROOT, check=False)
    if shutil.which('quarto'):
        assert r.returncode == 0 and (ROOT/'_docs/index.html').is_file(), (r.stdout + r.stderr)[-3000:]
    else: assert r.returncode != 0 and 'https://quarto.org' in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
