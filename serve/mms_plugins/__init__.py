"""multi-model-server endpoint plugins (Java), compiled into one jar by `python -m serve.mms_plugins`."""
