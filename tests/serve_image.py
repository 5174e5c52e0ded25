"""The serve image for tests/test_docker.py, made in a background thread from the moment the tests are collected: a Docker
daemon (the running one, or Debian's docker.io started here as root), a base (python:3.11-slim-bookworm where Docker Hub
answers, else `make docker-base` from Debian packages), then `make docker-serve` twice: from the package index (the
builder stage, with the host pip's index and CA as BuildKit secrets) and offline from the host's wheelhouse. Mostly
downloads and disk: the rest of the suite runs meanwhile. VOC_YOLO_TEST_IMAGE=<image> tests that image instead of
building one (the images workflow's smoke test of the exact image it is about to push)."""
import os, shutil, subprocess, threading, time
from pathlib import Path

import pytest

from helpers import ROOT

PULLED_BASE, DEBIAN_BASE = 'python:3.11-slim-bookworm', 'voc-yolo/base:bookworm'
IMAGE, WHEELHOUSE_IMAGE = 'voc-yolo/serve:test', 'voc-yolo/serve:test-wheelhouse'
CACHE_KEPT = '2GB'  # the build cache a test daemon keeps between runs: enough for the base and wheel layers


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

    def _base(self, times:dict)->str:
        "The Docker Hub base where it can be pulled (GitHub's runners), else one made of this machine's Debian packages."
        if not sh(self.docker, 'pull', '-q', PULLED_BASE).returncode: return PULLED_BASE
        if sh(self.docker, 'image', 'inspect', DEBIAN_BASE).returncode:
            if not shutil.which('mmdebstrap'):
                if os.geteuid() != 0: pytest.skip(f'cannot pull {PULLED_BASE}, no {DEBIAN_BASE} and no mmdebstrap to build it')
                apt_install('mmdebstrap')
            t = time.perf_counter(); sh('make', 'docker-base', f'DOCKER={self.docker}', cwd=ROOT, check=True)
            times['base'] = time.perf_counter() - t
        return DEBIAN_BASE

    def _make_image(self, name:str, base:str, wheels:str)->float:
        "`make docker-serve` as a user runs it; its wall time."
        t = time.perf_counter()
        r = sh('make', 'docker-serve', f'DOCKER={self.docker}', f'BASE_IMAGE={base}', f'WHEELS={wheels}', f'IMAGE={name}', cwd=ROOT)
        if r.returncode: raise AssertionError(f'make docker-serve WHEELS={wheels}:\n' + r.stdout[-3000:] + r.stderr[-3000:])
        return time.perf_counter() - t

    def size(self, name:str)->int: return int(sh(self.docker, 'image', 'inspect', '-f', '{{.Size}}', name, check=True).stdout)

    def _image(self)->dict:
        if os.environ.get('VOC_YOLO_TEST_IMAGE'):
            name = os.environ['VOC_YOLO_TEST_IMAGE']
            return dict(name=name, size=self.size(name), times={}, built=False)
        times = {}
        base = self._base(times)
        times['image from the index'] = self._make_image(IMAGE, base, 'index')
        times['wheelhouse + image from it'] = self._make_image(WHEELHOUSE_IMAGE, base, 'wheelhouse')
        return dict(name=IMAGE, size=self.size(IMAGE), base=base, times=times, built=True,
                    wheelhouse=dict(name=WHEELHOUSE_IMAGE, size=self.size(WHEELHOUSE_IMAGE)))

    def wait(self)->dict:
        self.thread.join()
        if isinstance(self.outcome, BaseException): raise self.outcome
        return self.outcome

    def stop(self):
        "Remove the image and stop the daemon this started (by its PID); the build, if still running, is left to end with the daemon."
        if isinstance(self.outcome, dict) and self.outcome['built']: sh(self.docker, 'rmi', '-f', IMAGE, WHEELHOUSE_IMAGE)
        if self.dockerd:  # a daemon this started: trim its build cache (each run adds ~1 GB of pip layers) and dangling images
            sh(self.docker, 'builder', 'prune', '-f', '--keep-storage', CACHE_KEPT)
            sh(self.docker, 'image', 'prune', '-f')
            self.dockerd.terminate()
            try: self.dockerd.wait(30)
            except subprocess.TimeoutExpired: self.dockerd.kill(); self.dockerd.wait()
