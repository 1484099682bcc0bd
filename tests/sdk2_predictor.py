"""The original notebook's client: SageMaker Python SDK 2's Predictor on a local endpoint (its
LocalSagemakerRuntimeClient POSTs invoke_endpoint's arguments to localhost:<serving_port>/invocations as headers,
the way SageMaker hands them to a container).

Run by .venv-sdk2's Python (`make setup-sdk2`). Usage: sdk2_predictor.py PORT json|numpy [CONTENT_TYPE] < image
Prints one JSON line: the Predictor's content type and its answer (numpy: dtype, shape, the values, and the class
index np.argmax(response, 1) names, as the notebook reads it).
"""

import json
import sys
from types import SimpleNamespace

import numpy as np
from sagemaker.deserializers import JSONDeserializer, NumpyDeserializer
from sagemaker.local import LocalSagemakerRuntimeClient
from sagemaker.predictor import Predictor

port, kind = int(sys.argv[1]), sys.argv[2]
session = SimpleNamespace(sagemaker_runtime_client=LocalSagemakerRuntimeClient(
    config={"local": {"serving_port": port}}))
predictor = Predictor("dogs", sagemaker_session=session,
                      deserializer=NumpyDeserializer() if kind == "numpy" else JSONDeserializer())
body = sys.stdin.buffer.read()
if len(sys.argv) > 3:
    response = predictor.predict(body, initial_args={"ContentType": sys.argv[3]})
else:
    response = predictor.predict(body)
if kind == "numpy":
    answer = {"dtype": str(response.dtype), "shape": list(response.shape), "values": response.tolist(),
              "argmax": int(np.argmax(response, 1)[0])}
else:
    answer = response
print(json.dumps({"content_type": predictor.content_type, "answer": answer}))
