"""The original notebook's query as a user of SageMaker Python SDK 3 writes it: sagemaker-core's Endpoint with
an IdentitySerializer and a NumpyDeserializer, then np.argmax(response, 1).

Run by make setup's Python (SDK 3). Usage: sdk3_invoke.py ENDPOINT_NAME < image.jpg
Prints {"index": ..., "probability": ..., "shape": [...]} as JSON.
"""

import json
import sys

import numpy as np
from sagemaker.core.deserializers import NumpyDeserializer
from sagemaker.core.resources import Endpoint
from sagemaker.core.serializers import IdentitySerializer

endpoint = Endpoint.get(endpoint_name=sys.argv[1])
endpoint.serializer, endpoint.deserializer = IdentitySerializer("image/jpeg"), NumpyDeserializer()
img_bytes = sys.stdin.buffer.read()
response = endpoint.invoke(body=img_bytes, content_type="image/jpeg", accept="application/x-npy").body
index = int(np.argmax(response, 1)[0])
print(json.dumps({"index": index, "probability": float(response[0, index]), "shape": list(response.shape)}))
