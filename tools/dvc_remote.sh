#!/usr/bin/env bash
# The DVC remote a workflow pulls from and pushes to (deploy-model.yaml, train-gpu.yaml): the repository variable
# DVC_REMOTE_URL (+ DVC_REMOTE_ENDPOINT for an S3-compatible store) as the default, in .dvc/config.local so that no
# committed file changes; without it, the default remote committed in .dvc/config; with neither, an error naming both.
set -euo pipefail
if [ -n "${DVC_REMOTE_URL:-}" ]; then
  dvc remote add --local --force --default model-store "$DVC_REMOTE_URL"
  if [ -n "${DVC_REMOTE_ENDPOINT:-}" ]; then dvc remote modify --local model-store endpointurl "$DVC_REMOTE_ENDPOINT"; fi
elif ! dvc remote default > /dev/null 2>&1; then
  echo "::error::no DVC remote: set the repository variable DVC_REMOTE_URL, or commit a default remote (dvc remote add -d)"
  exit 1
fi
