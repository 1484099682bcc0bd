#!/usr/bin/env bash
# The demo: make the embedded sample dataset, train on it with the same program a
# SageMaker job runs, serve the model with the serving program, classify one image
# over HTTP, stop the server. Everything lands in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")"
RUN=runs/demo
DATA=$RUN/data
PORT=${DEMO_PORT:-8080}

if [ ! -d "$DATA/train" ]; then
  python -m train.sample_data "$DATA"
fi
rm -rf "$RUN/opt_ml"

# No pretrained weights can be fetched offline, so the demo trains a small ResNet from
# scratch on 64 px crops; a real job uses the defaults (resnet50, ImageNet weights, 224 px).
python -m train \
  --data-dir "$DATA" --base-dir "$RUN/opt_ml" \
  --arch resnet18 --weights none --freeze-backbone false \
  --image-size 64 --batch-size 8 --epochs 4

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
rules = json.load(open(f"{base}/output/data/rules.json"))
found = [r["rule"] for r in rules if r["status"] == "IssuesFound"]
print(f"rules:           {len(found)} of {len(rules)} found issues{': ' + ', '.join(found) if found else ''} "
      "(see rules.json, report.html)")
PY

echo
echo "== serving the model on http://127.0.0.1:$PORT =="
SAGEMAKER_BIND_TO_PORT=$PORT python -m serve --model-dir "$RUN/opt_ml/model" --host 127.0.0.1 \
  > "$RUN/serve.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  grep -q "ready: POST" "$RUN/serve.log" && break
  kill -0 $SERVER 2>/dev/null || { cat "$RUN/serve.log"; echo "the server exited"; exit 1; }
  sleep 0.5
done
grep -q "ready: POST" "$RUN/serve.log" || { tail -20 "$RUN/serve.log"; echo "the server did not get ready"; exit 1; }

IMAGE=$(find "$DATA/test" -name '*.jpg' | sort | head -1)
python - "$PORT" "$IMAGE" <<'PY'
import json, sys, urllib.request
port, image = sys.argv[1], sys.argv[2]
request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=open(image, "rb").read(),
                                 headers={"Content-Type": "image/jpeg", "Accept": "application/json",
                                          "X-Amzn-SageMaker-Custom-Attributes": "top_k=3"})
answer = json.load(urllib.request.urlopen(request, timeout=60))
print(f"POST {image} -> {answer['label']} ({answer['probability']:.3f})")
for entry in answer["top_k"]:
    print(f"  {entry['probability']:.3f}  {entry['label']}")
PY
echo "== stopping the server =="
