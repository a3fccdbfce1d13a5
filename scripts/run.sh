#!/usr/bin/env bash
# The main job: train both networks, evaluate, visualize and write the report (sets up .venv on first use).
# Arguments go to the pipeline, e.g. --data.dataset flower_photos --data.root ../shared/data
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/python -m topdown.pipeline --config configs/pipeline.yaml "$@"
