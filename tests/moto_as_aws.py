"""moto's server, with the SageMaker hosting rules AWS documents and moto 5.2.5 does not keep.

Run as `python tests/moto_as_aws.py -H 127.0.0.1 -p PORT` (what tests/moto_aws.py starts). A test
that passes against plain moto can still fail on AWS; these are the rules the scripts depend on:

- CreateModel, CreateEndpointConfig and CreateEndpoint of a name that exists fail with
  ValidationException "Cannot create already existing ..." (moto overwrites the old one).
- UpdateEndpoint (moto has none): "Deploys the EndpointConfig specified in the request ... To update
  an endpoint, you must create a new EndpointConfig" (API_UpdateEndpoint). The endpoint must exist,
  the config must exist and differ from the one in use; SageMaker's status goes Updating -> InService,
  which this stand-in completes at once, as moto does for every job.
- "If the update would change the instance type for any model that is a target for auto scaling, the
  update fails ... Before you update the endpoint, delete any scaling policies configured for it and
  deregister the variant as a scalable target" (SageMaker developer guide, "Update endpoints that use
  auto scaling"): UpdateEndpoint fails so while Application Auto Scaling holds the variant.
- "You cannot convert your instance-based, real-time endpoint to a serverless endpoint. If you try to
  update your real-time endpoint to serverless, you receive a ValidationError" (SageMaker developer
  guide, Serverless Inference, "Feature exclusions"); the other way round is allowed.
- Serverless Inference's feature exclusions name network isolation too: a serverless endpoint config
  whose model was created with EnableNetworkIsolation fails here with a ValidationException (AWS's
  exact message is not documented; this one is ours). moto drops the field: kept beside its model.
- CreateTransformJob: "ModelName must be the name of an existing Amazon SageMaker model within an AWS
  Region in an AWS account", and the job's name "must be unique within an AWS Region in an AWS
  account" (API_CreateTransformJob); moto takes any model name and overwrites a job of the same name.
- "You must not delete an EndpointConfig in use by an endpoint that is live" (API_DeleteEndpointConfig):
  AWS lets the call through and the endpoint loses track of its instances; here it fails, so a test
  catches a script that does it.
- DescribeEndpoint's DataCaptureConfig is a DataCaptureConfigSummary whose four fields are all required
  (API_DescribeEndpoint): AWS leaves it out for an endpoint without data capture, moto answers `{}`,
  which SDK 3's sagemaker-core refuses to read (Endpoint.get: "Field required").
"""

from __future__ import annotations

import sys

from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter


def _refuse_existing(create, resource: str, registry, name_parameter: str, arn):
    def strict_create(self, *args, **kwargs):
        name = kwargs[name_parameter]
        if name in registry(self):
            raise ValidationError(message=f'Cannot create already existing {resource} "{arn(self, name)}".')
        return create(self, *args, **kwargs)

    return strict_create


SageMakerModelBackend.create_model = _refuse_existing(
    SageMakerModelBackend.create_model, "model", lambda backend: backend._models, "model_name",
    lambda backend, name: arn_formatter("model", name, backend.account_id, backend.region_name))
SageMakerModelBackend.create_endpoint_config = _refuse_existing(
    SageMakerModelBackend.create_endpoint_config, "endpoint configuration", lambda backend: backend.endpoint_configs,
    "endpoint_config_name",
    lambda backend, name: FakeEndpointConfig.arn_formatter(name, backend.account_id, backend.region_name))
SageMakerModelBackend.create_endpoint = _refuse_existing(
    SageMakerModelBackend.create_endpoint, "endpoint", lambda backend: backend.endpoints, "endpoint_name",
    lambda backend, name: FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name))

_create_transform_job = SageMakerModelBackend.create_transform_job


def _create_transform_job_of_an_existing_model(self, **kwargs):
    if kwargs["transform_job_name"] in self.transform_jobs:
        raise ValidationError(message=f"Job name {kwargs['transform_job_name']} must be unique within an AWS "
                                      "account and region, and a job with this name already exists")
    if kwargs["model_name"] not in self._models:
        arn = arn_formatter("model", kwargs["model_name"], self.account_id, self.region_name)
        raise ValidationError(message=f'Could not find model "{arn}".')
    return _create_transform_job(self, **kwargs)


SageMakerModelBackend.create_transform_job = _create_transform_job_of_an_existing_model

_delete_endpoint_config = SageMakerModelBackend.delete_endpoint_config


def _delete_unused_endpoint_config(self, endpoint_config_name: str) -> None:
    users = [e.endpoint_name for e in self.endpoints.values() if e.endpoint_config_name == endpoint_config_name]
    if users:
        raise ValidationError(message=f"endpoint config {endpoint_config_name} is in use by endpoint {users[0]}: "
                                      "AWS documents that it must not be deleted while the endpoint is live")
    _delete_endpoint_config(self, endpoint_config_name)


SageMakerModelBackend.delete_endpoint_config = _delete_unused_endpoint_config


def _update_endpoint(self) -> ActionResult:
    backend = self.sagemaker_backend
    name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
        raise ValidationError(message=f'Could not find endpoint "{arn}".')
    config = backend.describe_endpoint_config(config_name)  # ValidationException when it does not exist
    if config_name == endpoint.endpoint_config_name:
        raise ValidationError(message="To update an endpoint, you must create a new EndpointConfig.")
    _refuse_instance_type_change_under_auto_scaling(backend, name, endpoint, config)
    in_use = backend.describe_endpoint_config(endpoint.endpoint_config_name)["ProductionVariants"]
    if any("InstanceType" in v for v in in_use) and any("ServerlessConfig" in v for v in config["ProductionVariants"]):
        raise ValidationError(message="You cannot convert your instance-based, real-time endpoint to a serverless "
                                      "endpoint.")
    updated = FakeEndpoint(account_id=backend.account_id, region_name=backend.region_name, endpoint_name=name,
                           endpoint_config_name=config_name, production_variants=config["ProductionVariants"],
                           data_capture_config=config["DataCaptureConfig"], tags=endpoint.tags)
    backend.endpoints[name] = updated
    return ActionResult({"EndpointArn": updated.arn})


SageMakerResponse.update_endpoint = _update_endpoint

_create_model_response = SageMakerResponse.create_model
_create_endpoint_config_response = SageMakerResponse.create_endpoint_config


def _create_model_keeping_isolation(self) -> ActionResult:
    result = _create_model_response(self)
    model = self.sagemaker_backend._models[self._get_param("ModelName")]
    model.enable_network_isolation = bool(self._get_param("EnableNetworkIsolation"))
    return result


def _create_endpoint_config_without_isolated_serverless_models(self) -> ActionResult:
    models = self.sagemaker_backend._models
    for variant in self._get_param("ProductionVariants") or []:
        model = models.get(variant.get("ModelName"))
        if "ServerlessConfig" in variant and getattr(model, "enable_network_isolation", False):
            raise ValidationError(message=f"Model {variant['ModelName']} has network isolation enabled, which "
                                          "serverless endpoints do not support.")
    return _create_endpoint_config_response(self)


SageMakerResponse.create_model = _create_model_keeping_isolation
SageMakerResponse.create_endpoint_config = _create_endpoint_config_without_isolated_serverless_models


def _describe_endpoint_without_an_empty_capture_summary(self) -> ActionResult:
    description = dict(self.sagemaker_backend.describe_endpoint(self._get_param("EndpointName")))
    if not description.get("DataCaptureConfig"):
        description.pop("DataCaptureConfig", None)
    return ActionResult(description)


SageMakerResponse.describe_endpoint = _describe_endpoint_without_an_empty_capture_summary


def _refuse_instance_type_change_under_auto_scaling(backend, name: str, endpoint, config: dict) -> None:
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    scaling = applicationautoscaling_backends[backend.account_id][backend.region_name]
    registered = scaling.targets.get("sagemaker:variant:DesiredInstanceCount", {})
    in_use = backend.describe_endpoint_config(endpoint.endpoint_config_name)["ProductionVariants"]
    old_types = {v["VariantName"]: v.get("InstanceType") for v in in_use}
    for variant in config["ProductionVariants"]:
        old_type = old_types.get(variant["VariantName"])
        if f"endpoint/{name}/variant/{variant['VariantName']}" in registered and old_type != variant["InstanceType"]:
            raise ValidationError(message=f"The variant {variant['VariantName']} of endpoint {name} is a target for "
                                          f"auto scaling: its instance type ({old_type}) cannot change until its "
                                          "scaling policies are deleted and it is deregistered")


if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
