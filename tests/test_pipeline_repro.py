"The whole pipeline on a clean clone (tiny params): every stage runs, a second repro is a no-op, a killed repro resumes to the same bytes."
import json
import shutil
import subprocess
import time

import yaml

from helpers import epoch_started, kill_tree, run, unmeasured, wait_until

ACCURACY = ('metrics/data.json', 'metrics/train.json', 'metrics/eval.json', 'metrics/eval_per_class.csv', 'metrics/train_results.csv')


def test_every_stage_ran(tiny_run):
    for stage in ('prepare', 'train', 'evaluate', 'profile', 'quantize', 'loadtest', 'report'):
        assert f"Running stage '{stage}'" in tiny_run['log'], stage
    repo = tiny_run['repo']
    assert 'Data and pipelines are up to date' in run('dvc status', repo).stdout
    m = json.loads((repo/'metrics/eval.json').read_text())
    assert m['images'] == 8 and 0 <= m['metrics/mAP50(B)'] <= 1
    assert json.loads((repo/'metrics/train.json').read_text())['epochs'] == 2
    for f in ('models/best.pt', 'metrics/train_results.csv', 'metrics/eval_pr.csv', 'metrics/eval_confusion.csv', 'models/deploy.json',
              'metrics/eval_per_class.csv', 'reports/figures/evaluate/worst_images.png', 'reports/stages/evaluate.ipynb',
              'reports/index.html'):
        assert (repo/f).is_file(), f
    assert not list((repo/'data/voc_yolo').rglob('*.cache')), 'Ultralytics caches stay out of the DVC output'
    print(f"tiny pipeline: {tiny_run['seconds']:.0f} s")


def test_second_repro_is_a_no_op(tiny_run):
    t = time.perf_counter(); out = run('dvc repro', tiny_run['repo']).stdout; dt = time.perf_counter() - t
    assert 'Running stage' not in out, out
    print(f'dvc repro with nothing to do: {dt:.1f} s')  # a figure, not a timed assertion (a shared machine's seconds vary)


def test_cli_runs_the_same_function_as_the_notebook(tiny_run, tmp_path):
    repo = tiny_run['repo']
    p = json.loads(json.dumps(__import__('yaml').safe_load((repo/'params/evaluate.yaml').read_text())))
    csvs = {k: str(tmp_path/f'{k}.csv') for k in ('per_class_csv', 'pr_csv', 'confusion_csv', 'errors_csv')}
    p.update(metrics_path=str(tmp_path/'eval.json'), speed_path=str(tmp_path/'speed.json'), figures_dir=str(tmp_path/'fig'),
             run_dir=str(tmp_path/'run'), **csvs)
    (tmp_path/'evaluate.yaml').write_text(json.dumps(p))
    run(f'voc-yolo evaluate --params {tmp_path}/evaluate.yaml', repo)
    assert (tmp_path/'eval.json').read_bytes() == (repo/'metrics/eval.json').read_bytes()
    r = run('voc-yolo train --params params/nowhere.yaml', repo, check=False)
    assert r.returncode == 2 and 'params file not found' in r.stderr


def repro(repo, log, target='evaluate', force=False):
    """`dvc repro` in the background, its output in `log` (read while it runs). Not through a shell: DVC's lock names its PID,
    which must be reaped once killed (an orphan's zombie, where init does not reap, would hold the lock)."""
    return subprocess.Popen(['dvc', 'repro', *(['--force'] if force else []), target], cwd=repo, stdout=open(log, 'w'),
                            stderr=subprocess.STDOUT, start_new_session=True, env=unmeasured())


def lock_entry(repo, stage):
    return yaml.safe_load((repo/'dvc.lock').read_text())['stages'][stage]


def test_a_killed_repro_records_nothing_half_done_and_the_next_one_resumes_to_the_same_bytes(tiny_run, tmp_path):
    "Kill `dvc repro` (SIGKILL, the whole process tree) during train's second epoch, then during evaluate; rerun it."
    repo = tmp_path/'repo'  # a copy: the later stages of tiny_run's own lock stay true for the tests that read it
    shutil.copytree(tiny_run['repo'], repo, symlinks=True)
    before = {stage: lock_entry(repo, stage) for stage in ('train', 'evaluate')}
    p = repro(repo, tmp_path/'1.log', target='train', force=True)  # train again, from scratch
    wait_until(lambda: epoch_started(repo/'runs/train', 2), p, "train's epoch 2 started")
    kill_tree(p)
    assert lock_entry(repo, 'train') == before['train'], 'the killed train stage was recorded'
    p = repro(repo, tmp_path/'2.log')
    wait_until(lambda: "Running stage 'evaluate'" in (tmp_path/'2.log').read_text(), p, 'the evaluate stage started')
    time.sleep(1); kill_tree(p)  # its kernel is still starting
    log = (tmp_path/'2.log').read_text()
    assert 'resuming the interrupted run' in log and 'exact resume: restored resume_state_0.pt' in log, log[-3000:]
    assert lock_entry(repo, 'evaluate') == before['evaluate'], 'the killed evaluate stage was recorded'
    out = run('dvc repro evaluate', repo, measured=False).stdout
    assert "Running stage 'evaluate'" in out and "Running stage 'train'" not in out, out[-3000:]
    for f in ACCURACY: assert (repo/f).read_bytes() == (tiny_run['repo']/f).read_bytes(), f
    assert 'up to date' in run('dvc status evaluate', repo).stdout
