#!/usr/bin/env python3
"""Render the IAM policies of this workflow for one region, account and the S3 prefixes it uses.

    python scripts/iam_policies.py --region us-east-1 --account 123456789012 \\
        --data s3://my-datasets/dogImages --out-dir runs/iam

Writes three files to --out-dir and prints the AWS CLI commands that put them in place:

  execution-role-trust.json   lets SageMaker assume the execution role
  execution-role-policy.json  what jobs and endpoints do as that role (AWS's "SageMaker execution
                              roles" page): read --data and --output prefixes, write under --output
                              but never into a dataset (--data, and --output's data/ where
                              push_and_tune.sh uploads one), list only those prefixes,
                              pull the project's images and Debugger's rule images, logs, metrics,
                              publish to the SNS topics named --name-prefix* (async endpoints)
  operator-policy.json        what scripts/ do as you: the SageMaker jobs (transform jobs too), models,
                              endpoint configs and endpoints named --name-prefix* (every default name starts with
                              dog-), the two ECR repositories, the S3 prefixes, iam:PassRole of the
                              execution role to SageMaker only, the jobs' logs, endpoint auto scaling

--output defaults to s3://sagemaker-REGION-ACCOUNT/dog-classifier, where the scripts put data
uploads, models, checkpoints and debug output unless told otherwise. The tests replay every
AWS request the scripts make against these policies (tests/iam_evaluation.py) and lint them
with parliament.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from scripts import aws

VERSION = "2012-10-17"
SAGEMAKER = "sagemaker.amazonaws.com"
DEFAULT_NAME_PREFIX = "dog-"
DEFAULT_ROLE_NAME = "SageMakerExecutionRole"
DEFAULT_REPOSITORY_PREFIX = "dog-classifier-"
# SageMaker actions the scripts call, by the resource types AWS's Service Authorization Reference lists for
# them (CreateEndpoint and UpdateEndpoint need the endpoint and its endpoint config).
SAGEMAKER_ACTIONS = [
    "sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob", "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
    "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
    "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
    "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint",
    "sagemaker:DeleteEndpoint", "sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync", "sagemaker:AddTags",
    "sagemaker:ListTags",
    "sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob",
    # what auto scaling needs of the caller too (SageMaker's "Auto scaling prerequisites")
    "sagemaker:UpdateEndpointWeightsAndCapacities",
]
SAGEMAKER_RESOURCE_TYPES = ("hyper-parameter-tuning-job", "training-job", "model", "endpoint-config", "endpoint",
                            "transform-job")
# No resource-level permissions in the reference: these take "*" or nothing
SAGEMAKER_LIST_ACTIONS = ["sagemaker:ListModels", "sagemaker:ListEndpointConfigs"]
ECR_PUSH_ACTIONS = [
    "ecr:CreateRepository", "ecr:DescribeRepositories", "ecr:DeleteRepository", "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
    "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
]
ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
# deploy.py --min/--max-instances and cleanup.py; a scalable target's ARN carries an ID the service assigns
AUTOSCALING_ACTIONS = [
    "application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy",
]
AUTOSCALING_DESCRIBE_ACTIONS = [  # no resource types in the reference
    "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies",
]
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
ACCOUNT = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


account_id = aws.matching(ACCOUNT, "a 12-digit AWS account ID", "account_id")
region_name = aws.matching(REGION, "an AWS region like us-east-1", "region_name")


def default_output(region: str, account: str) -> str:
    """Where the scripts write unless told otherwise: the SDK's default bucket, under dog-classifier/."""
    return f"s3://sagemaker-{region}-{account}/dog-classifier"


def _statement(sid: str, actions: list[str] | str, resources: list[str] | str, condition: dict | None = None) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


# push_and_tune.sh uploads a local dataset to <output>/data/<folder>: a dataset like --data
DATA_UPLOAD_FOLDER = "data"


def _buckets_and_objects(prefixes: list[str]) -> tuple[list[str], list[str]]:
    """(bucket ARNs, object ARNs: every key under each prefix), each once, in order."""
    buckets, objects = [], []
    for uri in prefixes:
        bucket, prefix = aws.split_s3_uri(uri)
        buckets.append(f"arn:aws:s3:::{bucket}")
        objects.append(f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*")
    return list(dict.fromkeys(buckets)), list(dict.fromkeys(objects))


def _list_statements(sid: str, prefixes: list[str]) -> list[dict]:
    """s3:ListBucket on each bucket for the prefixes under it only (an s3:prefix condition per bucket, since a
    condition covers every resource of its statement); a prefix that is the whole bucket lists it all."""
    by_bucket: dict[str, list[str]] = {}
    for uri in prefixes:
        bucket, prefix = aws.split_s3_uri(uri)
        by_bucket.setdefault(bucket, []).append(prefix)
    statements = []
    for index, (bucket, bucket_prefixes) in enumerate(by_bucket.items()):
        # "dogImages" and "dogImages/*", not "dogImages*": that would also list dogImages-private/
        patterns = list(dict.fromkeys(p for prefix in bucket_prefixes for p in (prefix, f"{prefix}/*")))
        condition = None if "" in bucket_prefixes else {"StringLike": {"s3:prefix": patterns}}
        statements.append(_statement(f"{sid}{index + 1}", "s3:ListBucket", f"arn:aws:s3:::{bucket}", condition))
    return statements


def dataset_prefixes(data: list[str], outputs: list[str]) -> list[str]:
    """What the jobs read and must never change: every --data prefix and each output's data/ folder."""
    return list(dict.fromkeys([*data, *(f"{output}/{DATA_UPLOAD_FOLDER}" for output in outputs)]))


def overlap_problem(data: list[str], outputs: list[str]) -> str | None:
    """An --output inside (or equal to) a --data prefix: the jobs could write nowhere there."""
    for output in outputs:
        for dataset in data:
            if output == dataset or output.startswith(dataset + "/"):
                return f"--output {output} lies inside --data {dataset}: the jobs may not write into a dataset"
    return None


def trust_policy() -> dict:
    return {"Version": VERSION, "Statement": [
        {"Effect": "Allow", "Principal": {"Service": SAGEMAKER}, "Action": "sts:AssumeRole"}]}


def execution_role_policy(region: str, account: str, data: list[str], outputs: list[str],
                          repository_prefix: str = DEFAULT_REPOSITORY_PREFIX,
                          name_prefix: str = DEFAULT_NAME_PREFIX) -> dict:
    read_buckets, read_objects = _buckets_and_objects([*data, *outputs])
    _, write_objects = _buckets_and_objects(outputs)
    _, dataset_objects = _buckets_and_objects(dataset_prefixes(data, outputs))
    return {"Version": VERSION, "Statement": [
        # Channels: training data, a featurize job's features, a model to fine-tune, a model to host
        _statement("ReadChannelsAndModels", "s3:GetObject", read_objects),
        # SageMaker lists each channel's prefix (S3Prefix channels) and nothing else
        *_list_statements("ListOnlyTheChannelsPrefixes", [*data, *outputs]),
        _statement("LocateChannelBuckets", "s3:GetBucketLocation", read_buckets),
        _statement("WriteModelsCheckpointsAndDebugOutput", ["s3:PutObject", "s3:DeleteObject"], write_objects),
        # an explicit Deny wins over the Allow above: a dataset uploaded under an output prefix stays read-only
        {"Sid": "NeverChangeADataset", "Effect": "Deny", "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": dataset_objects},
        _statement("PullTheProjectImagesAndDebuggerRuleImages", ECR_PULL_ACTIONS, [
            f"arn:aws:ecr:{region}:{account}:repository/{repository_prefix}*",
            f"arn:aws:ecr:{region}:*:repository/sagemaker-debugger-rules"]),
        _statement("EcrLoginHasNoResourceLevelPermissions", "ecr:GetAuthorizationToken", "*"),
        _statement("JobAndEndpointLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                          "logs:DescribeLogStreams"],
                   f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"),
        _statement("TrainingAndEndpointMetrics", "cloudwatch:PutMetricData", "*",
                   {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}),
        # an asynchronous endpoint's --success-topic / --error-topic (deploy.py --async)
        _statement("NotifyTheProjectsTopics", "sns:Publish", f"arn:aws:sns:{region}:{account}:{name_prefix}*"),
    ]}


def operator_policy(region: str, account: str, data: list[str], outputs: list[str],
                    role_name: str = DEFAULT_ROLE_NAME, name_prefix: str = DEFAULT_NAME_PREFIX,
                    repository_prefix: str = DEFAULT_REPOSITORY_PREFIX) -> dict:
    buckets, objects = _buckets_and_objects([*data, *outputs])
    output_buckets, _ = _buckets_and_objects(outputs)
    sagemaker = f"arn:aws:sagemaker:{region}:{account}"
    return {"Version": VERSION, "Statement": [
        _statement("TuneTrainDeployAndCleanUpTheProjectsJobsAndEndpoints", SAGEMAKER_ACTIONS,
                   [f"{sagemaker}:{kind}/{name_prefix}*" for kind in SAGEMAKER_RESOURCE_TYPES]),
        _statement("FindWhatAFailedDeployLeftListingHasNoResourceLevelPermissions", SAGEMAKER_LIST_ACTIONS, "*"),
        _statement("HandTheExecutionRoleToSageMakerOnly", "iam:PassRole", f"arn:aws:iam::{account}:role/{role_name}",
                   {"StringEquals": {"iam:PassedToService": SAGEMAKER}}),
        _statement("CreatePushAndDeleteTheProjectsRepositories", ECR_PUSH_ACTIONS,
                   f"arn:aws:ecr:{region}:{account}:repository/{repository_prefix}*"),
        _statement("EcrLoginHasNoResourceLevelPermissions", "ecr:GetAuthorizationToken", "*"),
        # The SDK makes sure its default bucket exists (HeadBucket, then CreateBucket); push_and_tune.sh too
        _statement("CreateTheOutputBuckets", "s3:CreateBucket", output_buckets),
        *_list_statements("ListOnlyTheProjectsPrefixes", [*data, *outputs]),
        # HeadBucket (the SDK's default-bucket check, push_and_tune.sh's head-bucket) is s3:ListBucket without a
        # prefix: on the output buckets only, and only without one
        _statement("CheckTheOutputBucketsExist", "s3:ListBucket", output_buckets, {"Null": {"s3:prefix": "true"}}),
        _statement("LocateTheBuckets", "s3:GetBucketLocation", buckets),
        _statement("UploadDataReadResultsDeleteThem", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                                      "s3:AbortMultipartUpload"], objects),
        _statement("StreamJobLogs", ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
                   f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"),
        # Endpoint auto scaling, as SageMaker's "Auto scaling prerequisites" lists it: Application Auto
        # Scaling, the target-tracking policy's CloudWatch alarms, and its service-linked role the first time
        _statement("ScaleTheEndpoints", AUTOSCALING_ACTIONS,
                   f"arn:aws:application-autoscaling:{region}:{account}:scalable-target/*"),
        _statement("DescribeScalingHasNoResourceLevelPermissions", AUTOSCALING_DESCRIBE_ACTIONS, "*"),
        _statement("TargetTrackingAlarms", ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
                                            "cloudwatch:DescribeAlarms"],
                   f"arn:aws:cloudwatch:{region}:{account}:alarm:TargetTracking-*"),
        _statement("CreateAutoScalingsServiceLinkedRoleOnce", "iam:CreateServiceLinkedRole",
                   f"arn:aws:iam::{account}:role/aws-service-role/{AUTOSCALING_SERVICE}/"
                   "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                   {"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}}),
    ]}


def render(region: str, account: str, data: list[str], outputs: list[str] | None = None,
           role_name: str = DEFAULT_ROLE_NAME, name_prefix: str = DEFAULT_NAME_PREFIX) -> dict[str, dict]:
    outputs = outputs or [default_output(region, account)]
    return {
        "execution-role-trust.json": trust_policy(),
        "execution-role-policy.json": execution_role_policy(region, account, data, outputs, name_prefix=name_prefix),
        "operator-policy.json": operator_policy(region, account, data, outputs, role_name, name_prefix),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/iam_policies.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", type=region_name, required=True, help="e.g. us-east-1")
    parser.add_argument("--account", type=account_id, required=True, help="your 12-digit AWS account ID")
    parser.add_argument("--data", type=aws.s3_uri, action="append", default=[], metavar="S3_URI",
                        help="an S3 prefix holding a dataset the jobs read (repeatable), e.g. s3://my-data/dogImages")
    parser.add_argument("--output", type=aws.s3_uri, action="append", metavar="S3_URI",
                        help="an S3 prefix the jobs write to and the scripts upload to (repeatable; "
                             "default s3://sagemaker-REGION-ACCOUNT/dog-classifier)")
    parser.add_argument("--role-name", default=DEFAULT_ROLE_NAME, help=f"default {DEFAULT_ROLE_NAME}")
    parser.add_argument("--name-prefix", default=DEFAULT_NAME_PREFIX,
                        help=f"SageMaker job, model and endpoint names the operator may touch (default "
                             f"{DEFAULT_NAME_PREFIX}: every default name of the scripts)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/iam"), help="default runs/iam")
    args = parser.parse_args(argv)
    overlap = overlap_problem(args.data, args.output or [default_output(args.region, args.account)])
    if overlap:
        parser.error(f"argument --output: {overlap}")
    if not re.fullmatch(r"[\w+=,.@-]{1,64}", args.role_name):
        parser.error(f"argument --role-name: expected an IAM role name, got {args.role_name!r}")
    if not re.fullmatch(r"[a-zA-Z0-9-]{1,40}", args.name_prefix):
        parser.error(f"argument --name-prefix: expected letters, digits and hyphens, got {args.name_prefix!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, policy in render(args.region, args.account, args.data, args.output, args.role_name,
                               args.name_prefix).items():
        (args.out_dir / name).write_text(json.dumps(policy, indent=2) + "\n")
        print(f"wrote {args.out_dir / name}")
    out = args.out_dir
    print(f"""
create the execution role and give it its policy:
  aws iam create-role --role-name {args.role_name} --assume-role-policy-document file://{out}/execution-role-trust.json
  aws iam put-role-policy --role-name {args.role_name} --policy-name dog-classifier \\
      --policy-document file://{out}/execution-role-policy.json
give whoever runs scripts/ theirs (a user here; a group or an SSO permission set works the same):
  aws iam put-user-policy --user-name YOUR_USER --policy-name dog-classifier-operator \\
      --policy-document file://{out}/operator-policy.json
role ARN for the scripts' --role: arn:aws:iam::{args.account}:role/{args.role_name}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
