"""`docker build --secret` flags that give the serve image's builder stage (deploy/serve.Dockerfile) the host pip's index
address and CA certificate, read from the host's pip configuration at build time. BuildKit secrets never become a layer,
and nothing is written to a file of the project: the index address (it may hold credentials) goes to a 0600 file in the
folder given, which the caller deletes. Prints nothing where pip uses its defaults (a GitHub runner, a laptop):

    tmp=$(mktemp -d); docker build $(python tools/pip_secrets.py "$tmp") -f deploy/serve.Dockerfile .; rm -rf "$tmp"
"""
import os, re, subprocess, sys
from pathlib import Path


def pip_config()->dict:
    "pip's effective settings, as `pip config list` shows them: environment variables over the config files."
    out = subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'], capture_output=True, text=True).stdout
    found = {}
    for scope in (':env:', 'install', 'global'):  # the first scope that sets a key wins
        for key, value in re.findall(rf"^{re.escape(scope)}\.([\w-]+)='(.*)'$", out, re.M): found.setdefault(key, value)
    return found


def secret_flags(tmp:Path)->list[str]:
    "The --secret flags for this host's pip: `pip_cert` (a CA bundle file) and `pip_index_url` (written to `tmp`)."
    cfg, flags = pip_config(), []
    if cfg.get('cert'): flags += ['--secret', f"id=pip_cert,src={cfg['cert']}"]
    if cfg.get('index-url'):
        f = Path(tmp)/'pip_index_url'
        f.touch(mode=0o600); f.write_text(cfg['index-url'])
        flags += ['--secret', f'id=pip_index_url,src={f}']
    return flags


if __name__ == '__main__':
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]): sys.exit(f'usage: {sys.argv[0]} TMPDIR (a private folder)')
    print(' '.join(secret_flags(Path(sys.argv[1]))))
