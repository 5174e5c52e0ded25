"""Fail when a notebook given on the command line holds cell outputs (library and stage notebooks are committed without them)."""
import json, sys


def outputs(path:str)->list[int]:
    "Indices of the code cells of `path` that have outputs."
    cells = json.load(open(path, encoding='utf-8'))['cells']
    return [i for i, c in enumerate(cells) if c.get('outputs')]


def main(paths:list[str])->int:
    bad = {p: o for p in paths if (o := outputs(p))}
    for p, o in bad.items(): print(f'{p}: outputs in cells {o}: clear them (Jupyter: Edit > Clear All Outputs) and commit again')
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
