"""The serve image for tests/test_docker.py, made in a background thread from the moment the tests are collected: a Docker
daemon (the running one, or Debian's docker.io started here as root), the Debian base (make docker-base, once), the
wheelhouse (make wheelhouse) and the build with no network. Mostly downloads and disk: the rest of the suite runs meanwhile."""
import os, shutil, subprocess, threading, time
from pathlib import Path

import pytest

from helpers import ROOT

BASE, IMAGE = 'voc-yolo/base:bookworm', 'voc-yolo/serve:test'


def sh(*cmd, check=False, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, **kw)


def apt_install(*pkgs):
    r = sh('bash', '-c', f'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {" ".join(pkgs)}')
    if r.returncode: pytest.skip(f'apt-get install {" ".join(pkgs)} failed: {r.stderr[-500:]}')


class ServeImage:
    "Start with `start()`; `wait()` gives the docker client and the image (or skips, or raises, as the build did); `stop()` cleans up."
    def __init__(self, workdir:Path):
        self.workdir, self.dockerd, self.outcome = workdir, None, None
        self.docker = '/usr/bin/docker' if os.access('/usr/bin/docker', os.X_OK) else shutil.which('docker')  # Debian's does BuildKit
        self.thread = threading.Thread(target=self._build, name='serve-image', daemon=True)

    def start(self)->'ServeImage': self.thread.start(); return self

    def _build(self):
        try: self._daemon(); self.outcome = self._image()
        except BaseException as e: self.outcome = e  # noqa: BLE001 - a skip or a failure, raised again in the test that waits

    def _daemon(self):
        "A Docker daemon that answers: the running one, or (as root) Debian's docker.io started here."
        if self.docker and not sh(self.docker, 'info').returncode: return
        if os.geteuid() != 0: pytest.skip('no Docker daemon answers and this user is not root: start dockerd to test the serve image')
        if not shutil.which('dockerd'): apt_install('docker.io'); self.docker = '/usr/bin/docker'
        log = self.workdir/'dockerd.log'
        self.dockerd = subprocess.Popen(['dockerd', '--storage-driver=overlay2'], stdout=log.open('w'), stderr=subprocess.STDOUT)
        for _ in range(60):
            if not sh(self.docker, 'info').returncode or self.dockerd.poll() is not None: break
            time.sleep(1)
        if sh(self.docker, 'info').returncode: pytest.skip(f'dockerd does not start on this machine:\n{log.read_text()[-1500:]}')

    def _image(self)->dict:
        times = {}
        if sh(self.docker, 'image', 'inspect', BASE).returncode:
            if not shutil.which('mmdebstrap'):
                if os.geteuid() != 0: pytest.skip(f'no {BASE} image and no mmdebstrap to build it (apt-get install mmdebstrap)')
                apt_install('mmdebstrap')
            t = time.perf_counter(); sh('make', 'docker-base', f'DOCKER={self.docker}', cwd=ROOT, check=True)
            times['base'] = time.perf_counter() - t
        t = time.perf_counter(); sh('make', 'wheelhouse', cwd=ROOT, check=True); times['wheelhouse'] = time.perf_counter() - t
        t = time.perf_counter()
        r = sh('env', 'DOCKER_BUILDKIT=1', self.docker, 'build', '--network=none', '-f', 'deploy/serve.Dockerfile', '--target', 'serve',
               '--build-arg', f'BASE_IMAGE={BASE}', '-t', IMAGE, '.', cwd=ROOT)
        if r.returncode: raise AssertionError(r.stdout[-3000:] + r.stderr[-3000:])
        times['image'] = time.perf_counter() - t
        return dict(name=IMAGE, size=int(sh(self.docker, 'image', 'inspect', '-f', '{{.Size}}', IMAGE, check=True).stdout), times=times)

    def wait(self)->dict:
        self.thread.join()
        if isinstance(self.outcome, BaseException): raise self.outcome
        return self.outcome

    def stop(self):
        "Remove the image and stop the daemon this started (by its PID); the build, if still running, is left to end with the daemon."
        if isinstance(self.outcome, dict): sh(self.docker, 'rmi', '-f', IMAGE)
        if self.dockerd:
            self.dockerd.terminate()
            try: self.dockerd.wait(30)
            except subprocess.TimeoutExpired: self.dockerd.kill(); self.dockerd.wait()
