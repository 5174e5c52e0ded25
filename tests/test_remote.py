"""Scaling out: DVC remotes (a real S3 API on loopback through moto's server, and a plain directory), pulls and
`dvc repro --pull` in fresh clones, a remote that cannot be reached, and the GTO model registry."""
import filecmp
import json
import time

import yaml

from helpers import BUCKET, ROOT, free_port, publish, run

def tracked_outputs(repo):
    "The files a pull must restore byte for byte: the models and every metrics and plots file of dvc.yaml."
    spec = yaml.safe_load((repo/'dvc.yaml').read_text())
    metrics = [next(iter(m)) if isinstance(m, dict) else m for s in spec['stages'].values() for m in s.get('metrics', [])]
    plots = [f for p in spec['plots'] for v in p.values() for f in v['y']]
    deploy = sorted(str(f.relative_to(repo)) for f in (repo/'models/deploy').rglob('*') if f.is_file())
    return sorted({'models/best.pt', 'models/deploy.json', *deploy, *metrics, *plots})


def timed(cmd, cwd):
    t = time.perf_counter(); r = run(cmd, cwd); return r, time.perf_counter() - t


def pull_and_repro_in_fresh_clones(src, tmp_path, label):
    "`voc-yolo pull` in one fresh clone and `dvc repro --pull` in another: the same bytes back, no stage run."
    files = tracked_outputs(src)
    a = tmp_path/'clone-pull'; run(f'git clone -q {src} {a}', tmp_path)
    assert not (a/'models/best.pt').exists() and not (a/'.dvc/cache').exists(), 'a fresh clone has no DVC cache'
    _, pull_s = timed('voc-yolo pull', a)
    same = [f for f in files if filecmp.cmp(src/f, a/f, shallow=False)]
    assert same == files, f'not restored byte for byte: {sorted(set(files) - set(same))}'
    assert 'up to date' in run('dvc status', a).stdout
    b = tmp_path/'clone-repro'; run(f'git clone -q {src} {b}', tmp_path)
    r, repro_s = timed('dvc repro --pull', b)
    assert 'Running stage' not in r.stdout and not (b/'runs').exists(), f'a stage ran instead of being restored:\n{r.stdout[-2000:]}'
    assert filecmp.cmp(src/'models/best.pt', b/'models/best.pt', shallow=False)
    assert 'up to date' in run('dvc status', b).stdout
    print(f'{label}: pull {pull_s:.1f} s ({len(files)} files checked), repro --pull {repro_s:.1f} s, no stage run')


def test_s3_remote_push_then_pull_and_repro_in_fresh_clones(tiny_run, s3, tmp_path):
    import boto3
    src = publish(tiny_run, tmp_path/'src', f'dvc remote add -d storage s3://{BUCKET}/dvc && dvc remote modify storage endpointurl {s3}')
    _, push_s = timed('voc-yolo push', src)
    objects = boto3.client('s3', endpoint_url=s3).list_objects_v2(Bucket=BUCKET).get('Contents', [])
    assert any('/runs/' in o['Key'] for o in objects), 'the run-cache was not pushed'
    print(f"\nS3 push: {len(objects)} objects, {sum(o['Size'] for o in objects) / 1e6:.1f} MB in {push_s:.1f} s")
    pull_and_repro_in_fresh_clones(src, tmp_path, 'S3')


def test_directory_remote_push_then_pull_and_repro_in_fresh_clones(tiny_run, tmp_path):
    store = tmp_path/'store'
    src = publish(tiny_run, tmp_path/'src', f'dvc remote add -d storage {store}')
    _, push_s = timed('voc-yolo push', src)
    files = [f for f in store.rglob('*') if f.is_file()]
    assert (store/'runs').is_dir(), 'the run-cache was not pushed'
    print(f'\ndirectory push: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB in {push_s:.1f} s')
    pull_and_repro_in_fresh_clones(src, tmp_path, 'directory')


def test_an_unreachable_remote_is_named_without_a_traceback(tiny_run, s3, tmp_path):
    src = publish(tiny_run, tmp_path/'src', f'dvc remote add -d storage s3://{BUCKET}/dvc && dvc remote modify storage endpointurl {s3}')
    run(f'dvc remote modify --local storage endpointurl http://127.0.0.1:{free_port()}', src)  # nothing listens there
    r = run('voc-yolo pull', src, check=False)
    assert r.returncode != 0
    assert 'ERROR' in r.stderr, r.stderr  # DVC's own message stays
    assert f"voc-yolo pull: DVC could not pull from remote 'storage' (s3://{BUCKET}/dvc)" in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    r = run('voc-yolo push -r elsewhere', src, check=False)
    assert r.returncode != 0 and "there is no DVC remote named 'elsewhere'" in r.stderr, r.stderr


def test_register_and_promote_then_fetch_the_model_by_version_and_stage(tiny_run, tmp_path):
    src = publish(tiny_run, tmp_path/'src', f'dvc remote add -d storage {tmp_path/"store"}')
    run('voc-yolo push', src)
    reg = tmp_path/'registry'; run(f'git clone -q {src} {reg}', tmp_path)
    run('git config user.email t@t && git config user.name t', reg)
    make = f'make -o install VENV={ROOT/".venv"}'  # the helpers as a user runs them; -o install: this environment is already set up
    run(f'{make} register VERSION=v1.0.0', reg)
    run(f'{make} promote VERSION=v1.0.0 STAGE=prod', reg)
    assert run(f'{make} promote VERSION=v1.0.0', reg, check=False).returncode != 0  # no STAGE: refused
    tags = run('git tag', reg).stdout.split()
    assert 'deploy@v1.0.0' in tags and any(t.startswith('deploy#prod') for t in tags), tags
    shown = json.loads(run('gto show --json', reg).stdout)
    assert shown['deploy']['version'] == 'v1.0.0' and shown['deploy']['stage'] == {'prod': 'v1.0.0'}, shown
    for how, flag in (('version', '--rev v1.0.0'), ('stage', '--stage prod')):
        out = tmp_path/f'by-{how}'
        run(f'dvc artifacts get {reg} deploy {flag} -o {out}', tmp_path)
        cmp = filecmp.dircmp(src/'models/deploy', out)
        assert not (cmp.left_only or cmp.right_only or cmp.diff_files), (how, cmp.report())
