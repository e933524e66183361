#!/usr/bin/env bash
# Spark GPU discovery script (spark.{driver,executor}.resource.gpu.discoveryScript) for NVIDIA GPUs.
# Prints the GPUs visible to this process as Spark expects: {"name": "gpu", "addresses": ["0", "1", ...]}.
# Exits non-zero with a message on stderr when nvidia-smi is missing or lists no GPU, so a GPU profile on a
# machine without GPUs fails when the executor starts instead of silently running on the CPU.
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_discovery.sh: nvidia-smi not found; this node has no NVIDIA driver (spark.executor.resource.gpu.amount needs GPUs)" >&2
  exit 1
fi
ids=$(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ' | paste -sd, -)
if [ -z "$ids" ]; then
  echo "gpu_discovery.sh: nvidia-smi lists no GPU on this node" >&2
  exit 1
fi
printf '{"name": "gpu", "addresses": ["%s"]}\n' "$(echo "$ids" | sed 's/,/","/g')"
