"""A guard against tests that cannot fail: every pytest test function and every notebook test cell checks something
(an `assert`, a `test_*` helper such as `test_eq`, `test_fail`, `pytest.raises` or `pytest.fail`, or a function of
its own module that does). A notebook cell that only sets up or displays says so in its first comment."""
import ast
import json
import re

from helpers import ROOT

NOT_TESTS = re.compile(r'^#\|\s*(export|exporti|exports|default_exp|hide|eval:\s*false|exec_doc)\b', re.M)  # code or docs, not tests
OPT_OUT = re.compile(r'^# (set-up|display): \S', re.M)  # a cell that only prepares or shows, and says so
CHECK = re.compile(r'\bassert\b|\btest_\w+\(|\bpytest\.(raises|fail)\(')


def checks(fn:ast.AST, helpers:set)->bool:
    "Whether `fn` asserts, calls a checking helper (`test_*`, `raises`, `fail`) or one of `helpers` (functions that check)."
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert): return True
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, 'id', '')
            if name in ('raises', 'fail') or name.startswith('test_') or name in helpers: return True
    return False


def unchecked_tests(source:str)->list[str]:
    "The test functions of a module that check nothing, directly or through a function of the same module."
    fns = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    helpers = set()
    for _ in range(3):  # helpers that call helpers
        helpers |= {n.name for n in fns if not n.name.startswith('test_') and checks(n, helpers)}
    return [n.name for n in fns if n.name.startswith('test_') and not checks(n, helpers)]


def only_imports(source:str)->bool:
    try: body = ast.parse(source).body
    except SyntaxError: return False  # IPython magics: not plain Python, so not exempt
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


def unchecked_cells(nb:dict)->list[str]:
    "The test cells of a notebook that check nothing and do not say why (set-up, display); imports alone are set-up."
    out = []
    for c in nb['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] != 'code' or not s.strip() or NOT_TESTS.search(s) or OPT_OUT.search(s) or only_imports(s): continue
        if not CHECK.search(s): out.append(f"{c['id']}: {s.strip().splitlines()[0][:80]}")
    return out


def test_every_test_function_checks_something():
    found = {f.name: bad for f in sorted((ROOT/'tests').glob('test_*.py')) if (bad := unchecked_tests(f.read_text()))}
    assert not found, f'test functions that cannot fail: {found}'


def test_every_notebook_test_cell_checks_something_or_says_why_not():
    found = {f.name: bad for f in sorted((ROOT/'nbs').glob('*.ipynb')) if (bad := unchecked_cells(json.loads(f.read_text())))}
    assert not found, f"notebook cells that check nothing (add a check, or a first comment '# set-up: why' / '# display: why'): {found}"


def test_the_guard_catches_what_it_is_for():
    "Each kind of defect it exists for, caught; each way of checking, accepted."
    assert unchecked_tests('def test_a():\n    x = 1\n') == ['test_a']
    assert unchecked_tests('def test_a():\n    if False: assert x\n') == []  # a conditional check: the skip rules elsewhere own it
    assert unchecked_tests('def same(a, b): assert a == b\ndef test_a(): same(1, 1)\n') == []
    assert unchecked_tests('import pytest\ndef test_a():\n    with pytest.raises(ValueError): int("x")\n') == []
    cell = lambda s: {'cell_type': 'code', 'id': 'c1', 'source': [s]}
    nb = lambda *cells: {'cells': [cell(s) for s in cells]}
    assert unchecked_cells(nb('x = f(1)')) == ['c1: x = f(1)']
    assert unchecked_cells(nb('test_eq(f(1), 2)', 'import os', '#| export\ndef f(x): return x', '# display: the figure\nplot()')) == []
    assert unchecked_cells(nb('# a comment that says nothing\nplot()')) == ['c1: # a comment that says nothing']
