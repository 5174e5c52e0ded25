"Research-loop correctness: nothing installed behind the user's back (one image size from train to deploy: test_experiments.py)."
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

HOOK = '''import os, sys
def _log(event, args):
    if event == 'subprocess.Popen':
        argv = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
        with open(os.environ['SUBPROCESS_LOG'], 'a') as f: f.write(' '.join(map(str, argv)) + '\\n')
sys.addaudithook(_log)
'''


def test_non_images_are_reported_as_such_and_nothing_is_pip_installed(small_devkit, tmp_path):
    "A text file named .jpg and a PNG named .jpg, through `voc-yolo prepare` (which imports Ultralytics): no pip process."
    dk = tmp_path/'VOCdevkit'; shutil.copytree(small_devkit, dk)
    jpegs = dk/'VOCsynthetic/JPEGImages'
    (jpegs/'000001.jpg').write_text('this is a text file, not a photo\n')
    from PIL import Image
    Image.open(jpegs/'000002.jpg').save(jpegs/'000002.jpg', format='PNG')
    (tmp_path/'settings.ini').touch(); shutil.copy(Path(__file__).parents[1]/'dvc.yaml', tmp_path)  # its dvc.yaml lists stages
    params = dict(source=str(dk), out_dir='ds', dataset_yaml='ds.yaml', workers=1, max_skipped=0.5,
                  metrics_path='data.json', quality_path='quality.json')
    (tmp_path/'data.yaml').write_text(yaml.safe_dump(params))
    (tmp_path/'hook').mkdir(); (tmp_path/'hook/sitecustomize.py').write_text(HOOK)
    env = {**__import__('os').environ, 'PYTHONPATH': str(tmp_path/'hook'), 'SUBPROCESS_LOG': str(tmp_path/'subprocesses.log')}
    env.pop('YOLO_AUTOINSTALL', None)  # what a user's shell has: nothing; offline_setup must turn installs off itself
    # the hook sees a pip process when there is one
    probe = 'import subprocess, sys; subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)'
    subprocess.run([sys.executable, '-c', probe], env=env, check=True)
    assert '-m pip --version' in (tmp_path/'subprocesses.log').read_text()
    (tmp_path/'subprocesses.log').unlink()
    r = subprocess.run([shutil.which('voc-yolo'), 'prepare', '--params', 'data.yaml'], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path/'subprocesses.log').read_text() if (tmp_path/'subprocesses.log').exists() else ''
    assert not [line for line in log.splitlines() if ' pip ' in f' {line} ' or line.startswith('uv ')], log
    assert 'pi-heif' not in r.stdout + r.stderr and 'AutoUpdate' not in r.stdout + r.stderr, r.stderr[-2000:]
    q = json.loads((tmp_path/'quality.json').read_text())['issues']
    assert q['not_an_image']['count'] == 1 and 'not an image file' in q['not_an_image']['examples'][0], q
    assert q['wrong_extension'] == dict(count=1, decision='image kept (Ultralytics decodes images by their content, not their name)',
                                        examples=[f'train/000002: {jpegs}/000002.jpg: a PNG image named .jpg'])
    assert 'corrupt_image' not in q and 'ModuleNotFoundError' not in json.dumps(q)
    assert (tmp_path/'ds/images/train/000002.jpg').exists() and not (tmp_path/'ds/images/train/000001.jpg').exists()
