#!/usr/bin/env bash
# A short run of the paper's whole table on one GPU machine: 14 backbones x 3 signs at
# 224 px on synthetic data, a few hundred steps each, to measure each pair's training
# images per second and time (not accuracy: runs this short have not converged, and
# synthetic figures are never clinical). Sized to aim at about 10 minutes of one large
# GPU (not yet measured: no GPU was lent when it was written); prints the merged report
# and one line per pair.
#
#   trainer/cluster/table3_smoke.sh [OUT]      (OUT defaults to /tmp/table3-smoke)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/table3-smoke}
PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-100}
BATCH=${BATCH:-64}
N=${N:-1200}

"$PYTHON" -m trainer synth --out "$OUT/data" --n "$N" --seed 1 --size 224 >/dev/null
"$PYTHON" -m trainer sweep --data "$OUT/data" --out "$OUT/sweep" --backbones paper --signs all \
  --image-size 224 --steps "$STEPS" --eval-every "$STEPS" --batch "$BATCH" --patience 1 >/dev/null
"$PYTHON" -m trainer sweep --report "$OUT/sweep"
echo "pair, training images/s, training seconds:"
"$PYTHON" - "$OUT/sweep/report.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(f"{r['sign']}/{r['backbone']}: {r['images_per_second']} img/s, {r['train_seconds']} s")
PY
