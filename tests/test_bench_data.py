"The conversion benchmark's correctness half, on a few hundred files (its timing half is `make bench-data`)."
import subprocess
import sys

from helpers import ROOT


def test_bench_labels_are_byte_identical_to_the_reference_loop():
    r = subprocess.run([sys.executable, 'benchmarks/bench_data.py', '--n', '300', '--repeats', '1'], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'byte-identical: 300/300' in r.stdout
