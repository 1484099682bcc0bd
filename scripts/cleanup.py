#!/usr/bin/env python3
"""Delete what the workflow left running or stored: endpoint (its auto scaling first), endpoint config,
model; optionally
the ECR repositories (with their images) and an S3 prefix.

    python scripts/cleanup.py --endpoint-name dog-classifier
    python scripts/cleanup.py --endpoint-name dog-classifier --ecr-repository dog-classifier-train \\
        --ecr-repository dog-classifier-serve --s3-prefix s3://BUCKET/dog-classifier --yes

Lists what it found and asks before deleting (`--yes` skips the question). The endpoint config
and models are the ones the endpoint uses, found through it; names that exist without an
endpoint (a failed deploy) are found too. Anything already gone is reported, not an error.
"""

from __future__ import annotations

import argparse
import re
import sys

from scripts import autoscaling, aws, aws_errors, naming

ECR_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


def repository_name(value: str) -> str:
    if not ECR_REPOSITORY.fullmatch(value) or len(value) > 256:
        raise argparse.ArgumentTypeError(f"expected an ECR repository name like dog-classifier-train, got {value!r}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/cleanup.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-name", type=aws.name, help="endpoint to delete with its config and model")
    parser.add_argument("--ecr-repository", type=repository_name, action="append", default=[],
                        help="ECR repository to delete with all its images (repeatable)")
    parser.add_argument("--s3-prefix", type=aws.s3_uri, help="delete every object under this S3 prefix")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    if not (args.endpoint_name or args.ecr_repository or args.s3_prefix):
        parser.error("nothing to delete: give --endpoint-name, --ecr-repository or --s3-prefix")
    if args.s3_prefix and not aws.split_s3_uri(args.s3_prefix)[1]:
        parser.error(f"argument --s3-prefix: refusing to empty a whole bucket, give a prefix: {args.s3_prefix}")
    return args


def endpoint_resources(client, endpoint_name: str) -> dict[str, list[str]]:
    """The endpoint, and every endpoint config and model deploy.py made for it, as far as they exist: the ones
    it uses, and those a failed deploy or update left (named <endpoint>-<UTC time>, or <endpoint> itself)."""
    exists = aws.describe_or_none
    found = {"endpoint": [], "endpoint config": [], "model": []}
    configs = {endpoint_name, *_versioned(client, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName",
                                          endpoint_name)}
    models = {endpoint_name, *_versioned(client, "list_models", "Models", "ModelName", endpoint_name)}
    endpoint = exists(client.describe_endpoint, EndpointName=endpoint_name)
    if endpoint:
        found["endpoint"].append(endpoint_name)
        configs.add(endpoint["EndpointConfigName"])
    for config_name in sorted(configs):
        config = exists(client.describe_endpoint_config, EndpointConfigName=config_name)
        if config:
            found["endpoint config"].append(config_name)
            models |= {variant["ModelName"] for variant in config["ProductionVariants"]}
    found["model"] = [name for name in sorted(models) if exists(client.describe_model, ModelName=name)]
    return found


def _versioned(client, operation: str, key: str, field: str, endpoint_name: str) -> list[str]:
    """Names deploy.py gives this endpoint's models and configs, through every page of a List* call."""
    names = []
    for page in client.get_paginator(operation).paginate(NameContains=naming.name_base(endpoint_name)):
        names += [item[field] for item in page[key] if naming.is_timestamped(item[field], endpoint_name)]
    return names


def existing_repositories(ecr, names: list[str]) -> list[str]:
    existing = []
    for name in names:
        try:
            ecr.describe_repositories(repositoryNames=[name])
            existing.append(name)
        except ecr.exceptions.RepositoryNotFoundException:
            print(f"ECR repository {name}: not found")
    return existing


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"{question} [y/N] no terminal to ask on: pass --yes to delete without asking", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    sagemaker, ecr, s3 = boto.client("sagemaker"), boto.client("ecr"), boto.client("s3")
    scaling_client = boto.client("application-autoscaling")

    plan: list[str] = []
    resources = endpoint_resources(sagemaker, args.endpoint_name) if args.endpoint_name else {}
    scaled = [args.endpoint_name] if resources.get("endpoint") and autoscaling.current(
        scaling_client, args.endpoint_name) else []
    plan += [f"auto scaling of endpoint {name} (its policy and scalable target)" for name in scaled]
    for kind, names in resources.items():
        plan += [f"{kind} {name}" for name in names]
    if args.endpoint_name and not any(resources.values()):
        print(f"endpoint {args.endpoint_name}: nothing found (no endpoint, endpoint config or model of that name)")
    repositories = existing_repositories(ecr, args.ecr_repository)
    plan += [f"ECR repository {name} and all its images" for name in repositories]
    bucket, _, keys = aws.s3_keys(s3, args.s3_prefix) if args.s3_prefix else ("", "", [])
    if args.s3_prefix:
        plan.append(f"{len(keys)} objects under {args.s3_prefix}/")
    if not plan:
        print("nothing to delete")
        return 0
    print("will delete:\n" + "\n".join(f"  {line}" for line in plan))
    if not args.yes and not confirm("delete all of the above?"):
        print("nothing deleted")
        return 1

    # Auto scaling before the endpoint: DeleteEndpoint removes it only for callers allowed to
    # DeregisterScalableTarget, and leaves nothing behind this way. Endpoint next: a config or model in
    # use by an endpoint cannot be deleted before it.
    for name in scaled:
        autoscaling.remove(scaling_client, name)
    for name in resources.get("endpoint", []):
        sagemaker.delete_endpoint(EndpointName=name)
        sagemaker.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 10})
    for name in resources.get("endpoint config", []):
        sagemaker.delete_endpoint_config(EndpointConfigName=name)
    for name in resources.get("model", []):
        sagemaker.delete_model(ModelName=name)
    for name in repositories:
        ecr.delete_repository(repositoryName=name, force=True)
    failed = []
    for start in range(0, len(keys), 1000):  # delete_objects takes at most 1000 keys
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                          "Quiet": True})
        # S3 answers 200 and lists each object it did not delete (AccessDenied, ...) under Errors
        failed += answer.get("Errors", [])
    for error in failed:
        print(f"could not delete s3://{bucket}/{error.get('Key')}: {error.get('Code')}: {error.get('Message')}",
              file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} of {len(keys)} objects under {args.s3_prefix}/ were not deleted; "
              "everything else listed above was", file=sys.stderr)
        return 1
    print("deleted:\n" + "\n".join(f"  {line}" for line in plan))
    return 0


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
