# Sourced by the Dockerfiles' install steps: pip's index address and CA certificate from BuildKit secrets, when the
# build was given them (tools/pip_secrets.py prints the flags). Secrets are mounted for one step and never stored.
if [ -s /run/secrets/pip_index_url ]; then PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; export PIP_INDEX_URL; fi
if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi
