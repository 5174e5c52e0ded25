"""Point deploy/k8s's overlays at the serve image this repository's images.yaml pushes: ghcr.io/<owner>/<repo>/serve,
pinned by digest (the base names a placeholder that no registry holds).

    python tools/k8s_image.py sha256:<digest>            # owner/repo from `git remote get-url origin`
    python tools/k8s_image.py sha256:<digest> --image ghcr.io/me/fork/serve

The digest of the image on main: `docker buildx imagetools inspect ghcr.io/<owner>/<repo>/serve:main`.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

PLACEHOLDER = 'ghcr.io/voc-yolo/serve'  # what deploy/k8s/base/deployment.yaml names
OVERLAYS = Path(__file__).resolve().parent.parent/'deploy/k8s/overlays'


def pushed_image(remote_url:str)->str:
    "The serve image images.yaml pushes for the GitHub repository at `remote_url`: ghcr.io/<owner>/<repo>/serve, lower case."
    m = re.search(r'github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?$', remote_url)
    if not m: raise ValueError(f"{remote_url!r} is not a GitHub repository URL: give the image with --image")
    return f'ghcr.io/{m[1]}/{m[2]}/serve'.lower()


def set_image(overlay:Path, image:str, digest:str):
    "Write the overlay's `images:` entry mapping the placeholder to image@digest (other keys kept)."
    f = overlay/'kustomization.yaml'
    k = yaml.safe_load(f.read_text())
    k['images'] = [{'name': PLACEHOLDER, 'newName': image, 'digest': digest}]
    f.write_text(yaml.safe_dump(k, sort_keys=False))


def main(argv=None)->int:
    a = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    a.add_argument('digest', help='sha256:<64 hex digits>, the digest images.yaml pushed')
    a.add_argument('--image', help='the image name (default: from the git remote origin)')
    a.add_argument('--overlays', type=Path, default=OVERLAYS)
    args = a.parse_args(argv)
    if not re.fullmatch(r'sha256:[0-9a-f]{64}', args.digest):
        print(f"k8s_image: {args.digest!r} is not a digest (sha256:<64 hex digits>)", file=sys.stderr); return 2
    try:
        image = args.image or pushed_image(subprocess.run(['git', 'remote', 'get-url', 'origin'], capture_output=True, text=True,
                                                          check=True).stdout.strip())
    except (ValueError, subprocess.CalledProcessError) as e:
        print(f'k8s_image: {getattr(e, "stderr", "") or e}'.strip(), file=sys.stderr); return 2
    for overlay in sorted(p for p in args.overlays.iterdir() if (p/'kustomization.yaml').is_file()):
        set_image(overlay, image, args.digest); print(f'{overlay.name}: {image}@{args.digest}')
    return 0


if __name__ == '__main__': sys.exit(main())
