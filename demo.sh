#!/usr/bin/env bash
# The demo: make the embedded sample dataset, train on it with the same program a
# SageMaker job runs, and show what the job wrote. Everything lands in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")"
RUN=runs/demo
DATA=$RUN/data

if [ ! -d "$DATA/train" ]; then
  python -m train.sample_data "$DATA"
fi
rm -rf "$RUN/opt_ml"

# No pretrained weights can be fetched offline, so the demo trains a small ResNet from
# scratch on 64 px crops; a real job uses the defaults (resnet50, ImageNet weights, 224 px).
python -m train \
  --data-dir "$DATA" --base-dir "$RUN/opt_ml" \
  --arch resnet18 --weights none --freeze-backbone false \
  --image-size 64 --batch-size 16 --epochs 4

echo
echo "model artifact:  $RUN/opt_ml/model  ($(ls "$RUN/opt_ml/model" | tr '\n' ' '))"
echo "report:          $RUN/opt_ml/output/data  ($(ls "$RUN/opt_ml/output/data" | tr '\n' ' '))"
python - "$RUN/opt_ml" <<'PY'
import json, sys
base = sys.argv[1]
model = json.load(open(f"{base}/model/model.json"))
evaluation = json.load(open(f"{base}/output/data/evaluation.json"))
print(f"classes:         {', '.join(model['classes'])}")
print(f"test accuracy:   {evaluation['accuracy']:.3f} on {sum(c['images'] for c in evaluation['per_class'])} images")
print(f"skipped files:   {sum(v['skipped'] for v in evaluation['files'].values())} (see skipped_files.json)")
PY
