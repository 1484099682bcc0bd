"""Endpoint auto scaling through Application Auto Scaling: register the endpoint's variant as a scalable
target, attach a target-tracking policy on SageMakerVariantInvocationsPerInstance, find it, remove it.

AWS's rules this follows (SageMaker developer guide, "Update or delete endpoints that use auto
scaling"): an UpdateEndpoint that changes the instance type of an autoscaled variant fails, so the
policy and target go first and come back after; an update that keeps the instance type is allowed,
with RetainAllVariantProperties so the count auto scaling reached is kept; and DeleteEndpoint
only cleans up the target itself if the caller may DeregisterScalableTarget, so cleanup removes the
policy and target explicitly first.
"""

from __future__ import annotations

import dataclasses

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
VARIANT = "AllTraffic"


@dataclasses.dataclass(frozen=True)
class Scaling:
    minimum: int
    maximum: int
    target: float  # invocations per instance per minute
    scale_in_cooldown: int = 300  # seconds: scale in slowly ...
    scale_out_cooldown: int = 60  # ... and out quickly


def resource_id(endpoint_name: str, variant: str = VARIANT) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant}"


def policy_name(endpoint_name: str) -> str:
    return f"{endpoint_name}-invocations-per-instance"


def register(client, endpoint_name: str, scaling: Scaling) -> None:
    client.register_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name),
                                    ScalableDimension=DIMENSION, MinCapacity=scaling.minimum,
                                    MaxCapacity=scaling.maximum)
    client.put_scaling_policy(
        PolicyName=policy_name(endpoint_name), ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name),
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": scaling.target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": scaling.scale_in_cooldown, "ScaleOutCooldown": scaling.scale_out_cooldown})


def current(client, endpoint_name: str) -> Scaling | None:
    """The endpoint's scaling as registered now, or None."""
    targets = client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(endpoint_name)],
                                               ScalableDimension=DIMENSION)["ScalableTargets"]
    if not targets:
        return None
    policies = client.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name),
                                                ScalableDimension=DIMENSION)["ScalingPolicies"]
    tracking = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies
                if p.get("PolicyType") == "TargetTrackingScaling"]
    config = tracking[0] if tracking else {}
    return Scaling(targets[0]["MinCapacity"], targets[0]["MaxCapacity"], config.get("TargetValue", 0.0),
                   config.get("ScaleInCooldown", 300), config.get("ScaleOutCooldown", 60))


def remove(client, endpoint_name: str) -> list[str]:
    """Delete the endpoint's scaling policies, then deregister its scalable target; what was removed."""
    removed = []
    policies = client.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name),
                                                ScalableDimension=DIMENSION)["ScalingPolicies"]
    for policy in policies:
        client.delete_scaling_policy(PolicyName=policy["PolicyName"], ServiceNamespace=NAMESPACE,
                                     ResourceId=resource_id(endpoint_name), ScalableDimension=DIMENSION)
        removed.append(f"scaling policy {policy['PolicyName']}")
    targets = client.describe_scalable_targets(ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(endpoint_name)],
                                               ScalableDimension=DIMENSION)["ScalableTargets"]
    if targets:
        client.deregister_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name),
                                          ScalableDimension=DIMENSION)
        removed.append(f"scalable target {resource_id(endpoint_name)}")
    return removed
