"""Serving side: multi-model-server + sagemaker-inference with this project's handler, ONNX Runtime inside.

Nothing here imports training code or torch; the model artifact (model.onnx + model.json)
is the only thing serving knows about training.
"""
