"""The GitHub workflows' `run:` steps that can run here, read from the workflow files so that the two cannot drift
apart: the `full` job's install step (platform detection, on Debian and on a stand-in Ubuntu), the train-gpu report
(`dvc metrics diff`, `dvc params diff`, `dvc plots diff` on the tiny pipeline's repository with two commits), and
deploy-model's `gto`, `fetch` and `publish` steps against a local S3 (moto), and its rollout steps without a cluster.
Plus what every workflow must declare."""
import filecmp
import json
import os
import shutil
import subprocess

import pytest
import yaml

from helpers import BUCKET, ROOT, S3_ENV, clean_copy, free_port, publish, run

WORKFLOWS = ROOT/'.github/workflows'


def workflow(name:str)->dict: return yaml.safe_load((WORKFLOWS/name).read_text())


def all_jobs():
    "(file name, workflow, job name, job) for every job of every workflow."
    for f in sorted(WORKFLOWS.glob('*.yaml')):
        wf = workflow(f.name)
        for name, job in wf['jobs'].items(): yield f.name, wf, name, job


def step(wf:str, job:str, key:str)->dict:
    "The step of `job` whose id is `key`, or whose name starts with it."
    steps = workflow(wf)['jobs'][job]['steps']
    found = [s for s in steps if s.get('id') == key or s.get('name', '').startswith(key)]
    assert len(found) == 1, f'{wf}: job {job} has {len(found)} steps named {key!r}'
    return found[0]


def run_step(s:dict, cwd, env:dict, check=True)->subprocess.CompletedProcess:
    "A `run:` step as GitHub's runner runs it: bash with -e and -o pipefail, the step's env over the job's."
    return run(f"set -eo pipefail\n{s['run']}", cwd, check=check, executable='/bin/bash', env={**os.environ, **env})


def test_every_job_has_a_timeout_and_every_action_is_pinned_by_commit():
    for f in sorted(WORKFLOWS.glob('*.yaml')):
        wf = yaml.safe_load(f.read_text())
        assert wf['permissions'] == {'contents': 'read'}, f'{f.name}: the workflow grants more than read; grant it per job'
        for name, job in wf['jobs'].items():
            assert 'timeout-minutes' in job, f'{f.name}: job {name} has no timeout-minutes'
            for s in job['steps']:
                if 'uses' in s:
                    ref = s['uses'].split('@')[1]
                    assert len(ref) == 40 and all(c in '0123456789abcdef' for c in ref), f'{f.name}: {s["uses"]} is not a commit'
    for line in (l for f in WORKFLOWS.glob('*.yaml') for l in f.read_text().splitlines() if 'uses:' in l):
        assert '# v' in line, f'the release of a pinned action belongs in a comment: {line.strip()}'


def test_the_images_workflow_tests_the_digest_it_tags_with_the_suites_own_test():
    "build pushes a candidate; test pulls that digest once, on a runner of its own, and runs the suite's test; release tags and signs it."
    jobs = workflow('images.yaml')['jobs']
    assert (jobs['test']['needs'], jobs['release']['needs']) == ('build', 'test'), 'tested, then tagged and signed'
    smoke = step('images.yaml', 'test', 'smoke test of the serve image')
    assert smoke['env']['VOC_YOLO_TEST_IMAGE'] == 'voc-yolo/serve:candidate' and 'pytest -q -rs tests/test_docker.py' in smoke['run']
    pull = step('images.yaml', 'test', 'pull the candidate by digest')['run']
    assert '@$(cat digest.txt)' in pull and 'voc-yolo/$IMAGE:candidate' in pull, pull
    pulls = {name: sum('docker pull' in s.get('run', '') for s in job['steps']) for name, job in jobs.items()}
    assert pulls == {'build': 0, 'test': 1, 'release': 0}, pulls  # the big train image lands once, on a disk without buildx's cache
    names = [s.get('name') or s.get('uses', '') for s in jobs['release']['steps']]
    signed = [n for n in names if n.startswith(('release tags', 'keyless'))]
    assert signed == ['release tags on the tested digest', 'keyless signature of the digest'], names
    push = step('images.yaml', 'build', 'push')
    assert push['with']['sbom'] is True and push['with']['provenance'] == 'mode=max', push['with']


def test_the_images_workflow_runs_test_code_with_read_rights_only():
    "Nothing that pip-installs or runs tests holds push or signing rights (item 13): each job is granted what its steps use."
    jobs = workflow('images.yaml')['jobs']
    assert jobs['build']['permissions'] == {'contents': 'read', 'packages': 'write'}
    assert jobs['test']['permissions'] == {'contents': 'read', 'packages': 'read'}
    assert jobs['release']['permissions'] == {'contents': 'read', 'packages': 'write', 'id-token': 'write'}
    for name in ('build', 'release'):
        runs = ' '.join(s.get('run', '') for s in jobs[name]['steps'])
        assert not any(w in runs for w in ('pip ', 'make ', 'pytest', 'docker run')), f'{name} runs code: {runs}'
    assert not any('checkout' in s.get('uses', '') for s in jobs['release']['steps']), 'release needs no code from the repository'


def test_the_digest_build_records_is_the_one_release_signs(tmp_path):
    "build's record step and release's read step, run here: the digest passes through the artifact unchanged."
    digest = 'sha256:' + 'cd' * 32
    run_step(step('images.yaml', 'build', "record the candidate's digest"), tmp_path, {'DIGEST': digest})
    run_step(step('images.yaml', 'release', 'digest'), tmp_path, {'GITHUB_OUTPUT': str(tmp_path/'out')})
    assert (tmp_path/'out').read_text() == f'digest={digest}\n'
    jobs = workflow('images.yaml')['jobs']
    up = next(s for s in jobs['build']['steps'] if 'upload-artifact' in s.get('uses', ''))
    downs = [s for j in ('test', 'release') for s in jobs[j]['steps'] if 'download-artifact' in s.get('uses', '')]
    assert up['with']['path'] == 'digest.txt' and len(downs) == 2 and all(d['with']['name'] == up['with']['name'] for d in downs)


def test_the_full_jobs_install_step_finds_the_tools_on_debian():
    s = step('tests.yaml', 'full', 'system tools')
    out = run_step(s, ROOT, {}).stdout
    for tool in ('browser', 'prometheus', 'wrk'):
        line = next(l for l in out.splitlines() if l.startswith(f'{tool}:'))
        assert all(os.access(p, os.X_OK) for p in line.split()[1::2]), line


def test_the_install_step_uses_chrome_on_ubuntu_and_never_the_chromium_snap(tmp_path):
    "On an Ubuntu runner: Chrome and $CHROMEWEBDRIVER are found; with neither, it says so instead of installing the snap stub."
    (tmp_path/'os-release').write_text('NAME="Ubuntu"\nID=ubuntu\n')
    bin_, drv = tmp_path/'bin', tmp_path/'chromedriver-linux64'
    bin_.mkdir(); drv.mkdir()
    for f in (bin_/'google-chrome', drv/'chromedriver'): f.write_text('#!/bin/sh\n'); f.chmod(0o755)
    for tool in ('bash', 'sed', 'tr', 'grep', 'id'): (bin_/tool).symlink_to(shutil.which(tool))  # and no Debian chromium
    env = {**os.environ, 'OS_RELEASE': str(tmp_path/'os-release'), 'PATH': str(bin_), 'CHROMEWEBDRIVER': str(drv)}
    r = subprocess.run(['bash', 'tools/system_deps.sh', 'browser'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f'browser: {bin_}/google-chrome with {drv}/chromedriver', (r.stdout, r.stderr)
    (bin_/'google-chrome').unlink()
    r = subprocess.run(['bash', 'tools/system_deps.sh', 'browser'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 1 and 'snap' in r.stderr and 'apt-get' not in r.stderr, (r.stdout, r.stderr)


def test_the_training_report_diffs_metrics_params_and_plots_against_main(tiny_run, tmp_path):
    s = step('train-gpu.yaml', 'train', 'report against main')
    assert 'bash tools/ci_report.sh origin/main report' in s['run'], s['run']
    repo = publish(tiny_run, tmp_path/'repo', 'true')  # commits: ..., the tiny run's results, no remote
    run('git branch -f main HEAD~2', repo)  # main: the repository before the results
    run(f'bash {ROOT}/tools/ci_report.sh main report', repo)
    md = (repo/'report/report.md').read_text()
    assert '| Path' in md and 'metrics/eval.json' in md and '### Params against main' in md, md[:2000]
    plots = [next(iter(p)) for p in yaml.safe_load((repo/'dvc.yaml').read_text())['plots']]
    for p in plots:
        spec = json.loads((repo/f'report/vega/{p}.json').read_text())
        assert 'vega-lite' in spec['$schema'], p
    assert (repo/'report/plots/index.html').stat().st_size > 1000


@pytest.fixture
def registry(tiny_run, s3, tmp_path):
    "The tiny pipeline's results pushed to S3 and tagged deploy#prod#1; a clone of the tag without a committed remote."
    src = publish(tiny_run, tmp_path/'src', f'dvc remote add -d storage s3://{BUCKET}/models && dvc remote modify storage endpointurl {s3}')
    run('voc-yolo push', src)
    run('git config user.email t@t && git config user.name t && gto register deploy --version v1.0.0 '
        '&& gto assign deploy --version v1.0.0 --stage prod', src)
    clone = tmp_path/'clone'; run(f'git clone -q {src} {clone} && git -C {clone} checkout -q "deploy#prod#1"', tmp_path)
    run('dvc remote remove storage', clone)
    return dict(src=src, clone=clone, s3=s3)


def test_deploy_model_reads_the_tag_and_fetches_the_model_from_s3(registry, tmp_path):
    clone, outputs = registry['clone'], tmp_path/'github_output'
    outputs.touch()
    run_step(step('deploy-model.yaml', 'deploy', 'gto'), clone, {'REF': 'refs/tags/deploy#prod#1', 'GITHUB_OUTPUT': str(outputs)})
    got = dict(l.split('=', 1) for l in outputs.read_text().split())
    assert got == {'artifact': 'deploy', 'event': 'assignment', 'stage': 'prod', 'version': 'v1.0.0'}, got
    fetch = step('deploy-model.yaml', 'deploy', 'fetch the model')
    r = run_step(fetch, clone, {'DVC_REMOTE_URL': '', 'DVC_REMOTE_ENDPOINT': ''}, check=False)
    assert r.returncode == 1 and 'set the repository variable DVC_REMOTE_URL' in r.stdout, (r.stdout, r.stderr)
    assert not (clone/'models/deploy').exists()
    run_step(fetch, clone, {'DVC_REMOTE_URL': f's3://{BUCKET}/models', 'DVC_REMOTE_ENDPOINT': registry['s3'], **S3_ENV})
    cmp = filecmp.dircmp(registry['src']/'models/deploy', clone/'models/deploy')
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files), cmp.report()
    assert filecmp.cmp(registry['src']/'models/deploy.json', clone/'models/deploy.json', shallow=False)
    assert 'model-store' not in run('git diff', clone).stdout, 'the remote went into a committed file'
    # the store route: the fetched model becomes version 1 of `prod` in the replicas' store (moto's S3), checked as an upload is
    publish_step = step('deploy-model.yaml', 'deploy', "publish to the replicas' model store")
    r = run_step(publish_step, clone, {'MODEL_STORE_URL': '', 'STAGE': 'prod'})
    assert '::notice::skipped the model store' in r.stdout, r.stdout
    r = run_step(publish_step, clone, {'MODEL_STORE_URL': f's3://{BUCKET}/replica-store', 'MODEL_STORE_ENDPOINT': registry['s3'],
                                       'STAGE': 'prod', **S3_ENV})
    assert f's3://{BUCKET}/replica-store/prod/1: published' in r.stdout, (r.stdout, r.stderr)
    import boto3
    keys = [o['Key'] for o in boto3.client('s3', endpoint_url=registry['s3']).list_objects_v2(
        Bucket=BUCKET, Prefix='replica-store/prod/1/')['Contents']]
    want = sorted(['claim.json', 'manifest.json', *(p.name for p in (clone/'models/deploy').iterdir())])
    assert sorted(k.rsplit('/', 1)[1] for k in keys) == want, keys


def test_deploy_model_rollouts_say_what_they_skip_and_fail_loudly_when_set_up_wrong(tmp_path):
    "Without their settings the Kubernetes and Cloud Run steps skip with a notice; with them, kubectl fails on an unreachable cluster."
    digest, outputs = 'sha256:' + 'ab' * 32, tmp_path/'github_output'
    env = {'RUNNER_TEMP': str(tmp_path), 'GITHUB_OUTPUT': str(outputs), 'DIGEST': digest}
    outputs.touch()
    k8s = step('deploy-model.yaml', 'deploy', 'roll out to Kubernetes')
    r = run_step(k8s, ROOT, {**env, 'KUBE_CONFIG': '', 'NAMESPACE': 'voc-yolo', 'IMAGE': f'ghcr.io/o/r/serve@{digest}'})
    assert '::notice::skipped the Kubernetes rollout' in r.stdout, r.stdout
    render = step('deploy-model.yaml', 'deploy', 'render the Cloud Run service')
    r = run_step(render, ROOT, {**env, 'REGION': '', 'IMAGE': ''})
    assert '::notice::skipped Cloud Run' in r.stdout and outputs.read_text() == '', r.stdout
    image = 'europe-docker.pkg.dev/p/ghcr/o/r/serve'
    run_step(render, ROOT, {**env, 'REGION': 'europe-west1', 'IMAGE': image})
    rendered = yaml.safe_load((tmp_path/'cloudrun.yaml').read_text())
    assert outputs.read_text() == f'file={tmp_path}/cloudrun.yaml\n', outputs.read_text()
    committed = yaml.safe_load((ROOT/'deploy/cloudrun.yaml').read_text())
    assert rendered['spec']['template']['spec']['containers'][0].pop('image') == f'{image}@{digest}'
    placeholder = committed['spec']['template']['spec']['containers'][0].pop('image')
    assert placeholder == 'ghcr.io/voc-yolo/serve@sha256:' + '0' * 64, placeholder  # a digest no registry holds, never a tag
    assert rendered == committed, 'only the image changes'
    if not shutil.which('kubectl'): pytest.skip('kubectl is not installed: the configured Kubernetes rollout is not run')
    port = free_port()  # nothing listens there: the rollout must fail, not report success
    kubeconfig = yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'c',
                                 'clusters': [{'name': 'k', 'cluster': {'server': f'https://127.0.0.1:{port}'}}],
                                 'contexts': [{'name': 'c', 'context': {'cluster': 'k', 'user': 'u'}}],
                                 'users': [{'name': 'u', 'user': {'token': 'not-a-token'}}]})
    k8s_env = {**env, 'KUBE_CONFIG': kubeconfig, 'NAMESPACE': 'voc-yolo', 'IMAGE': f'ghcr.io/o/r/serve@{digest}'}
    r = run_step(k8s, ROOT, k8s_env, check=False)
    assert r.returncode != 0 and f'127.0.0.1:{port}' in r.stderr, (r.returncode, r.stdout, r.stderr)
    assert (tmp_path/'kubeconfig').stat().st_mode & 0o077 == 0, 'the cluster credentials are readable by others'


def test_every_python_and_os_claimed_has_a_leg_that_installs_with_the_lock(tmp_path):
    "The package's metadata (classifiers, Requires-Python) names what tests.yaml's `fast` matrix runs, each leg with -c constraints.txt."
    from email.parser import Parser
    out = run(f'python setup.py -q egg_info --egg-base {tmp_path}', ROOT).stdout  # the metadata pip would read
    meta = Parser().parsestr(next(tmp_path.glob('*.egg-info')).joinpath('PKG-INFO').read_text())
    claimed = {c.rsplit(' :: ', 1)[1] for c in meta.get_all('Classifier') if c.startswith('Programming Language :: Python :: 3.')}
    systems = {c for c in meta.get_all('Classifier') if c.startswith('Operating System')}
    fast = workflow('tests.yaml')['jobs']['fast']
    assert claimed == set(fast['strategy']['matrix']['python']) and meta['Requires-Python'] == f'>={min(claimed)}', (claimed, out)
    assert systems == {'Operating System :: POSIX :: Linux'} and fast['runs-on'] == 'ubuntu-latest', systems
    install = step('tests.yaml', 'fast', 'install')['run']
    assert '-c constraints.txt' in install and 'if ' not in install, install  # every leg, no leg without the lock
    assert all(job['runs-on'].startswith('ubuntu') for job in workflow('tests.yaml')['jobs'].values())  # no platform unclaimed


def test_every_multi_line_run_step_stops_at_its_first_failure():
    "`set -euo pipefail` first: a failing command inside a step (or inside `$(…)` of an assignment) fails the step."
    for f, _, name, job in all_jobs():
        for s in job.get('steps', []):
            if '\n' in s.get('run', '').strip():
                assert s['run'].startswith('set -euo pipefail\n'), f"{f}: job {name}, step {s.get('name') or s.get('id')}"


@pytest.mark.slow  # a fresh venv and an install
def test_the_sweep_plan_step_runs_in_what_its_job_installs(tmp_path):
    "train-gpu's plan job on a fresh venv, as a hosted runner runs it: its own install line, then the grid, as JSON."
    plan = step('train-gpu.yaml', 'plan', 'grid')
    venv = tmp_path/'venv'
    run(f'{shutil.which("python3") or "python3"} -m venv {venv}', tmp_path)
    out = tmp_path/'github_output'
    env = {'PATH': f"{venv/'bin'}:{os.environ['PATH']}", 'VIRTUAL_ENV': str(venv), 'GITHUB_OUTPUT': str(out),
           'SWEEP': "-S 'params/train.yaml:lr0=0.001,0.003' -S 'params/train.yaml:imgsz=320,640'"}
    r = run_step(plan, clean_copy(tmp_path/'repo'), env, check=False)  # a checkout: the editable install writes into it
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    points = json.loads(out.read_text().split('points=', 1)[1])
    assert len(points) == 4 and '-S params/train.yaml:lr0=0.001 -S params/train.yaml:imgsz=320' in points, points


ACTION_NEEDS = {  # the GITHUB_TOKEN scopes each action needs (from its documentation); contents: read for checkout
    'actions/checkout': {'contents': 'read'},
    'actions/configure-pages': {'pages': 'read'},
    'actions/deploy-pages': {'pages': 'write', 'id-token': 'write'},
    'github/codeql-action/analyze': {'security-events': 'write'},
    'docker/login-action': {'packages': 'read'},  # ghcr.io with GITHUB_TOKEN: read to pull, write where the job pushes
    'google-github-actions/auth': {'id-token': 'write'},  # workload identity federation
}


def granted(wf:dict, job:dict)->dict:
    "The token's scopes in a job: its own `permissions`, else the workflow's."
    return job.get('permissions', wf.get('permissions', {}))


def missing_permissions(wf:dict, job:dict)->list[str]:
    "What the job's actions need and its token lacks: 'action: scope need'."
    level, have = {'none': 0, 'read': 1, 'write': 2}, granted(wf, job)
    return [f'{a}: {k} {v}' for s in job.get('steps', []) for a in [s.get('uses', '').split('@')[0]]
            for k, v in ACTION_NEEDS.get(a, {}).items() if level[have.get(k, 'none')] < level[v]]


def test_every_action_gets_the_permissions_it_needs():
    for f, wf, name, job in all_jobs(): assert not missing_permissions(wf, job), (f, name, missing_permissions(wf, job))


def test_the_permission_check_catches_the_docs_build_without_pages_read():
    "The configure-pages step as it stood (the job inherited contents: read alone): caught; with pages: read, passed."
    wf, job = {'permissions': {'contents': 'read'}}, {'steps': [{'uses': 'actions/configure-pages@x'}]}
    assert missing_permissions(wf, job) == ['actions/configure-pages: pages read']
    assert missing_permissions(wf, {**job, 'permissions': {'contents': 'read', 'pages': 'read'}}) == []


def test_every_step_that_moves_dvc_data_sets_up_the_remote_it_names():
    """A step that pushes or pulls DVC data configures the remote from DVC_REMOTE_URL first (tools/dvc_remote.sh), with
    the variable in its env."""
    found = 0
    for f, _, name, job in all_jobs():
        for s in job.get('steps', []):
            text = s.get('run', '')
            if not any(c in text for c in ('dvc push', 'dvc pull', 'dvc exp push', 'dvc exp run --pull')): continue
            found += 1
            where = f"{f}: job {name}, step {s.get('name')}"
            assert 'tools/dvc_remote.sh' in text and text.index('tools/dvc_remote.sh') < min(
                text.index(c) for c in ('dvc push', 'dvc pull', 'dvc exp run') if c in text), where
            assert s['env']['DVC_REMOTE_URL'] == '${{ vars.DVC_REMOTE_URL }}', where
            if 'docker run' in text: assert '-e DVC_REMOTE_URL' in text and '-e DVC_REMOTE_ENDPOINT' in text, where
    assert found >= 3, found  # deploy-model's fetch, train-gpu's train and sweep


def test_self_hosted_jobs_pull_the_image_they_run():
    "A self-hosted runner keeps its images: `docker run` of a moving tag (:main) there pulls it every time."
    for f, _, name, job in all_jobs():
        if 'self-hosted' not in job['runs-on']: continue
        for text in (s['run'] for s in job['steps'] if 'docker run' in s.get('run', '') and ':main' in s['run']):
            assert '--pull always' in text.split('docker run', 1)[1].split('\n', 1)[0], f'{f}: job {name}: {text[:200]}'


def test_no_doc_or_target_pushes_every_tag_at_once():
    "GitHub sends no push event when more than three tags are pushed at once: `--tags` would never start deploy-model."
    texts = {f: f.read_text() for f in [ROOT/'Makefile', *WORKFLOWS.glob('*.yaml'), *(ROOT/'nbs').glob('*.ipynb')]}
    assert not [f.name for f, t in texts.items() if 'push --tags' in t or 'push origin --tags' in t]


def test_tests_run_on_branches_not_tags_and_never_cancel_on_main():
    wf = workflow('tests.yaml')
    on = wf[True]  # YAML 1.1 reads the key `on` as True
    assert on['push'] == {'branches': ['**']}, on['push']
    assert wf['concurrency']['cancel-in-progress'] == "${{ github.ref != 'refs/heads/main' }}", wf['concurrency']


def test_the_serve_image_smoke_test_sets_up_as_a_user_does():
    """tests/test_docker.py runs the tiny pipeline through papermill -k voc_yolo: the step installs with the lock and
    registers that kernel (make install)."""
    smoke = step('images.yaml', 'test', 'smoke test of the serve image')['run']
    assert 'make install' in smoke and '.venv/bin/python -m pytest' in smoke, smoke
    target = (ROOT/'Makefile').read_text().split('\n$(STAMP):', 1)[1].split('\n\n', 1)[0]
    assert '-c constraints.txt' in target and 'ipykernel install' in target and '--name voc_yolo' in target, target


def rendered_images(overlay)->set:
    "The container images `kubectl kustomize` (or `kustomize build`) renders for an overlay; a skip saying why where neither exists."
    tool = 'kubectl kustomize' if shutil.which('kubectl') else 'kustomize build' if shutil.which('kustomize') else None
    if tool is None: pytest.skip('neither kubectl nor kustomize is installed: the overlays cannot be rendered (GitHub runners have both)')
    docs = yaml.safe_load_all(run(f'{tool} {overlay}', ROOT).stdout)
    return {c['image'] for d in docs if d and d['kind'] == 'Deployment' for c in d['spec']['template']['spec']['containers']}


def test_the_overlays_deploy_the_image_images_yaml_pushes(tmp_path):
    "make k8s-image points both overlays at ghcr.io/<owner>/<repo>/serve@digest: the name images.yaml's own step computes."
    assert rendered_images(ROOT/'deploy/k8s/overlays/prod') == {'ghcr.io/voc-yolo/serve@sha256:' + '0' * 64}  # the placeholder
    shutil.copytree(ROOT/'deploy/k8s', tmp_path/'k8s')
    run('git init -q && git remote add origin git@github.com:Some-Owner/My-Repo.git', tmp_path)
    digest = 'sha256:' + 'ab' * 32
    r = run(f'python {ROOT}/tools/k8s_image.py bad --overlays k8s/overlays', tmp_path, check=False)
    assert r.returncode == 2 and "'bad' is not a digest" in r.stderr, r.stderr
    assert not filecmp.dircmp(ROOT/'deploy/k8s/overlays/prod', tmp_path/'k8s/overlays/prod').diff_files  # refused: nothing written
    run(f'python {ROOT}/tools/k8s_image.py {digest} --overlays k8s/overlays', tmp_path)
    out = tmp_path/'github_output'
    env = {'GITHUB_OUTPUT': str(out), 'IMAGE': 'serve', 'GITHUB_REPOSITORY': 'Some-Owner/My-Repo'}
    run_step(step('images.yaml', 'build', 'name'), tmp_path, env)
    pushed = out.read_text().strip().split('image=', 1)[1]
    for overlay in ('dev', 'prod'): assert rendered_images(tmp_path/f'k8s/overlays/{overlay}') == {f'{pushed}@{digest}'}, overlay


def test_dependabot_keeps_only_what_it_can_do_and_the_refresh_workflow_does_the_rest(tmp_path):
    """Dependabot: the actions only (item 10). The weekly refresh runs `make lock` and pins the Dockerfiles' base images;
    its pull-request step, run here on a clean checkout, finds nothing moved and opens nothing."""
    bot = yaml.safe_load((ROOT/'.github/dependabot.yml').read_text())
    assert [u['package-ecosystem'] for u in bot['updates']] == ['github-actions'], bot['updates']
    wf = workflow('refresh.yaml')
    assert '23 5 * * 1' in [c['cron'] for c in wf[True]['schedule']] and 'workflow_dispatch' in wf[True]
    refresh = step('refresh.yaml', 'refresh', 'recompile the lock')['run']
    assert 'make lock' in refresh and 'tools/pin_bases.py deploy/*.Dockerfile' in refresh, refresh
    assert '\nlock:' in (ROOT/'Makefile').read_text() and (ROOT/'tools/pin_bases.py').is_file()
    repo = tmp_path/'repo'; shutil.copytree(ROOT/'deploy', repo/'deploy')
    run('git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm base', repo)
    r = run_step(step('refresh.yaml', 'refresh', 'open a pull request'), repo, {'BRANCH': 'refresh/1', 'GH_TOKEN': ''})
    assert '::notice::the lock and the base images are current' in r.stdout, r.stdout
    assert 'refresh/1' not in run('git branch --list', repo).stdout  # no branch, no push, no pull request


def test_pin_bases_pins_every_dockerfiles_base_to_a_digest(tmp_path):
    "tools/pin_bases.py on the repository's Dockerfiles, with a stand-in registry: each ARG BASE_IMAGE gains (or renews) its digest."
    import importlib.util
    spec = importlib.util.spec_from_file_location('pin_bases', ROOT/'tools/pin_bases.py')
    pb = importlib.util.module_from_spec(spec); spec.loader.exec_module(pb)
    asked = []
    def registry(tag): asked.append(tag); return 'sha256:' + f'{len(asked):x}' * 64
    for f in sorted((ROOT/'deploy').glob('*.Dockerfile')):
        text = f.read_text()
        pinned = pb.pin(text, registry)
        tag = pb.BASE_ARG.search(text)[2]
        assert f'ARG BASE_IMAGE={tag}@sha256:' in pinned and asked[-1] == tag, f.name
        assert [l for l in pinned.splitlines() if not l.startswith('ARG BASE_IMAGE=')] == \
               [l for l in text.splitlines() if not l.startswith('ARG BASE_IMAGE=')], f'{f.name}: only the ARG line changes'
        again = pb.pin(pinned, registry)  # next week: the digest is renewed, not appended
        assert again.count('@sha256:') == pinned.count('@sha256:') and again != pinned, f.name
    (tmp_path/'x.Dockerfile').write_text('FROM debian\n')
    r = run(f'python {ROOT}/tools/pin_bases.py {tmp_path}/x.Dockerfile', tmp_path, check=False)
    assert r.returncode == 2 and 'has no ARG BASE_IMAGE=<tag> line' in r.stderr, r.stderr
