"""Pin each Dockerfile's base image (`ARG BASE_IMAGE=<tag>`) to the digest its tag points at now: `<tag>@sha256:…`.

Dependabot cannot see a `FROM ${BASE_IMAGE}` (it does not resolve ARGs), so the weekly refresh workflow
(.github/workflows/refresh.yaml) runs this beside `make lock` and opens one pull request with both.

    python tools/pin_bases.py deploy/*.Dockerfile      # resolves with `docker buildx imagetools inspect` (needs a registry)
"""
import re
import subprocess
import sys
from pathlib import Path

BASE_ARG = re.compile(r'^(ARG BASE_IMAGE=)([^\s@]+)(@sha256:[0-9a-f]{64})?(.*)$', re.M)


def registry_digest(tag:str)->str:
    "The digest `tag` points at in its registry now (the manifest list's, as `FROM` would pull it)."
    out = subprocess.run(['docker', 'buildx', 'imagetools', 'inspect', tag, '--format', '{{json .Manifest.Digest}}'],
                         capture_output=True, text=True, check=True).stdout
    digest = out.strip().strip('"')
    if not re.fullmatch(r'sha256:[0-9a-f]{64}', digest): raise ValueError(f'{tag}: the registry answered {out!r}, not a digest')
    return digest


def pin(text:str, resolve=registry_digest)->str:
    "Every `ARG BASE_IMAGE=<tag>[@digest]` line of a Dockerfile, with the digest its tag resolves to now."
    return BASE_ARG.sub(lambda m: f'{m[1]}{m[2]}@{resolve(m[2])}{m[4]}', text)


def main(paths:list[str])->int:
    if not paths: print(__doc__.split('\n\n')[-1].strip(), file=sys.stderr); return 2
    for p in map(Path, paths):
        text = p.read_text()
        if not BASE_ARG.search(text): print(f'pin_bases: {p} has no ARG BASE_IMAGE=<tag> line', file=sys.stderr); return 2
        new = pin(text)
        if new != text: p.write_text(new); print(f'{p}: {BASE_ARG.search(new)[0]}')
    return 0


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
