"The profile and quantize stages through DVC on tiny params, and their errors as a user meets them."
import json

from conftest import run


def test_dvc_repro_through_profile_and_quantize(tiny_run):
    repo = tiny_run['repo']
    q = json.loads((repo/'metrics/quantize.json').read_text())
    assert {'torch-fp32', 'ort-fp32', 'ort-int8-ultralytics', 'ort-int8-qdq', 'ov-fp32-default', 'ov-int8-nncf'} <= set(q['variants'])
    assert q['variants']['ort-int8-qdq']['precision'] == 'int8' and q['variants']['ov-int8-nncf']['precision'] == 'int8'
    deploy = json.loads((repo/'models/deploy.json').read_text())
    assert deploy['variant'] == q['deployed'] and (repo/deploy['path']).exists()
    prof = json.loads((repo/'metrics/profile.json').read_text())
    for k, v in prof['latency'].items(): assert 0 < v['median_ms'] <= v['p90_ms'], (k, v)
    assert prof['machine']['gemm_roof_gflops_per_s'] > 0 and prof['model']['gflops'] > 0
    assert (repo/'reports/profile/trace.json').stat().st_size > 1000


def test_quantize_errors_name_the_problem(repo_copy):
    pm = 'papermill nbs/stages/quantize.ipynb out.ipynb -f params/quantize.yaml'
    cases = {"-p weights models/none.pt": "train a model first (dvc repro train)",
             "-p calib_images 0": "needs at least one calibration image",
             "-y 'backends: [tensorrt]'": "['tensorrt'] not supported"}
    for args, msg in cases.items():
        r = run(f'{pm} {args}', repo_copy, check=False)
        assert r.returncode != 0 and msg in r.stdout + r.stderr, (args, (r.stdout + r.stderr)[-2000:])
