"""The baseline for the serving benchmark: an inference.py written the way the original Udacity project's is.

A sagemaker-inference user module (model_fn / input_fn / predict_fn / output_fn) served by
sagemaker-inference's DefaultHandlerService on the same multi-model-server: PyTorch eager,
PIL decode, torchvision transforms built per request, JSON of the raw scores out.
"""

import io
import json
import os

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as handle:
        metadata = json.load(handle)
    model = torchvision.models.resnet50(weights=None)
    hidden = metadata["hyperparameters"].get("hidden_units", 256)
    model.fc = nn.Sequential(nn.Linear(2048, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, metadata["num_classes"]))
    state = torch.load(os.path.join(model_dir, "model.pt"), map_location="cpu", weights_only=True)
    renamed = {k.replace("backbone.", "", 1) if k.startswith("backbone.") else k.replace("head.", "fc.", 1): v
               for k, v in state.items()}
    model.load_state_dict(renamed)
    model.eval()
    return model


def input_fn(request_body, content_type):
    if content_type == "image/jpeg":
        return Image.open(io.BytesIO(request_body))
    raise Exception(f"Requested unsupported ContentType in content_type: {content_type}")


def predict_fn(input_object, model):
    transform = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    input_object = transform(input_object.convert("RGB"))
    with torch.no_grad():
        return model(input_object.unsqueeze(0))


def output_fn(prediction, accept):
    return json.dumps(prediction.tolist()), "application/json"
