"""What IAM would decide for each AWS request a test recorded: the request -> (action, resource, context)
mapping of AWS's Service Authorization Reference, and identity-policy evaluation as AWS's "Policy
evaluation logic" page gives it (an explicit Deny wins, else any matching Allow, else denied).

Why not moto's own IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT): moto 5.2.5 authorises every
non-S3 request against the resource "*" (moto/core/responses.py), so a statement scoped to
`arn:...:model/dog-*` never matches and a correct least-privilege policy is refused; and an Allow
statement whose Condition does not hold becomes an explicit Deny there (iam/access_control.py),
where AWS merely skips it. Only identity policies with Allow/Deny, Action/NotAction, Resource
and the StringEquals/StringLike/Null conditions are evaluated here: what the project's policies use.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import urllib.parse
import xml.etree.ElementTree as ElementTree

from moto_aws import REGION


@dataclasses.dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()  # condition keys of the request

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.context)
        return f"{self.action} on {self.resource}{extra}"


# ------------------------------------------------------------------ evaluation

def is_allowed(policy: dict, request: Authorization) -> bool:
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    allowed = False
    for statement in statements:
        if not _applies(statement, request):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def _applies(statement: dict, request: Authorization) -> bool:
    if "Action" in statement:
        action_matches = any(_wildcard(a, request.action, case=False) for a in _list(statement["Action"]))
    else:
        action_matches = not any(_wildcard(a, request.action, case=False) for a in _list(statement["NotAction"]))
    if not action_matches:
        return False
    if "Resource" in statement:
        if not any(_wildcard(r, request.resource, case=True) for r in _list(statement["Resource"])):
            return False
    elif any(_wildcard(r, request.resource, case=True) for r in _list(statement["NotResource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), dict(request.context))


def _conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            value = context.get(key)
            if operator == "Null":  # "true": the request must not carry the key; "false": it must
                if (value is None) != (expected == "true"):
                    return False
                continue
            if value is None:  # a key the request does not carry: the condition does not hold
                return False
            if operator == "StringEquals":
                held = value in _list(expected)
            elif operator == "StringLike":
                held = any(_wildcard(pattern, value, case=True) for pattern in _list(expected))
            else:
                raise NotImplementedError(f"condition operator {operator}: teach iam_evaluation.py")
            if not held:
                return False
    return True


def _wildcard(pattern: str, value: str, case: bool) -> bool:
    """IAM's wildcards: * any run of characters (colons and slashes too), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------ recorded requests -> authorizations

SAGEMAKER_RESOURCES = {  # operation -> (resource type, request field) per the Service Authorization Reference
    "CreateHyperParameterTuningJob": [("hyper-parameter-tuning-job", "HyperParameterTuningJobName")],
    "DescribeHyperParameterTuningJob": [("hyper-parameter-tuning-job", "HyperParameterTuningJobName")],
    "StopHyperParameterTuningJob": [("hyper-parameter-tuning-job", "HyperParameterTuningJobName")],
    "ListTrainingJobsForHyperParameterTuningJob": [("hyper-parameter-tuning-job", "HyperParameterTuningJobName")],
    "CreateTrainingJob": [("training-job", "TrainingJobName")],
    "DescribeTrainingJob": [("training-job", "TrainingJobName")],
    "StopTrainingJob": [("training-job", "TrainingJobName")],
    "CreateTransformJob": [("transform-job", "TransformJobName")],
    "DescribeTransformJob": [("transform-job", "TransformJobName")],
    "StopTransformJob": [("transform-job", "TransformJobName")],
    "CreateModel": [("model", "ModelName")],
    "DescribeModel": [("model", "ModelName")],
    "DeleteModel": [("model", "ModelName")],
    "CreateEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "DescribeEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "DeleteEndpointConfig": [("endpoint-config", "EndpointConfigName")],
    "CreateEndpoint": [("endpoint", "EndpointName"), ("endpoint-config", "EndpointConfigName")],
    "UpdateEndpoint": [("endpoint", "EndpointName"), ("endpoint-config", "EndpointConfigName")],
    "DescribeEndpoint": [("endpoint", "EndpointName")],
    "DeleteEndpoint": [("endpoint", "EndpointName")],
    "ListModels": [],
    "ListEndpointConfigs": [],
}
# Requests that hand SageMaker a role: the caller also needs iam:PassRole on it, passed to SageMaker
PASSED_ROLE = {"CreateTrainingJob": "RoleArn", "CreateModel": "ExecutionRoleArn",
               "CreateHyperParameterTuningJob": ("TrainingJobDefinition", "RoleArn")}
ECR_WITHOUT_RESOURCE = {"GetAuthorizationToken"}
NO_PERMISSION_NEEDED = {("sts", "GetCallerIdentity")}  # AWS answers it for any caller


def authorizations(entry: dict, account: str) -> list[Authorization]:
    """What one recorded request (moto's recording: method, url, headers, body) needs IAM to allow."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    service = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/", headers.get("authorization", ""))
    if not service:
        raise AssertionError(f"unsigned request {entry['method']} {entry['url']}")
    service = service.group(1)
    # JSON protocols name the operation in X-Amz-Target; query protocols (STS) in the form body's Action
    query_action = urllib.parse.parse_qs(_body_bytes(entry).decode("latin-1")).get("Action", [""])[0] \
        if "x-www-form-urlencoded" in headers.get("content-type", "") else ""
    target = headers.get("x-amz-target", "").rpartition(".")[2] or query_action
    if (service, target) in NO_PERMISSION_NEEDED:
        return []
    if service == "s3":
        return s3_authorizations(entry)
    try:
        body = json.loads(_body_bytes(entry) or b"{}")
    except ValueError:
        raise AssertionError(f"no IAM mapping for {service} {entry['method']} {entry['url']}") from None
    if service == "sagemaker":
        return sagemaker_authorizations(target, body, account)
    if service == "ecr":
        if target in ECR_WITHOUT_RESOURCE:
            return [Authorization(f"ecr:{target}", "*")]
        names = body.get("repositoryNames") or [body["repositoryName"]]
        return [Authorization(f"ecr:{target}", f"arn:aws:ecr:{REGION}:{account}:repository/{name}") for name in names]
    if service == "application-autoscaling":
        # Describe* have no resource types; the others act on a scalable target, whose ARN ends in an ID the
        # service assigns at registration (so a policy can only say scalable-target/*)
        if target.startswith("Describe"):
            return [Authorization(f"application-autoscaling:{target}", "*")]
        return [Authorization(f"application-autoscaling:{target}",
                              f"arn:aws:application-autoscaling:{REGION}:{account}:scalable-target/id-by-aws")]
    if service == "logs":
        return [Authorization(f"logs:{target}", f"arn:aws:logs:{REGION}:{account}:log-group:{body['logGroupName']}")]
    raise AssertionError(f"no IAM mapping for {service} {target or entry['url']}: add it to iam_evaluation.py")


def sagemaker_authorizations(operation: str, body: dict, account: str) -> list[Authorization]:
    if operation not in SAGEMAKER_RESOURCES:
        raise AssertionError(f"no IAM mapping for sagemaker:{operation}: add it to iam_evaluation.py")
    arns = [f"arn:aws:sagemaker:{REGION}:{account}:{kind}/{body[field].lower()}"  # SageMaker ARNs are lowercase
            for kind, field in SAGEMAKER_RESOURCES[operation]] or ["*"]
    needed = [Authorization(f"sagemaker:{operation}", arn) for arn in arns]
    role_field = PASSED_ROLE.get(operation)
    if role_field:
        role = body[role_field[0]][role_field[1]] if isinstance(role_field, tuple) else body[role_field]
        needed.append(Authorization("iam:PassRole", role, (("iam:PassedToService", "sagemaker.amazonaws.com"),)))
    return needed


def s3_authorizations(entry: dict) -> list[Authorization]:
    """Path-style S3 REST requests -> the actions AWS's S3 documentation lists for each operation."""
    url = urllib.parse.urlsplit(entry["url"])
    bucket, _, key = url.path.lstrip("/").partition("/")
    key = urllib.parse.unquote(key)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    method = entry["method"]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not bucket:
        return [Authorization("s3:ListAllMyBuckets", "*")]
    if not key:
        if method == "HEAD":  # HeadBucket needs s3:ListBucket
            return [Authorization("s3:ListBucket", bucket_arn)]
        if method == "GET" and "location" in query:
            return [Authorization("s3:GetBucketLocation", bucket_arn)]
        if method == "GET" and not set(query) - {"list-type", "prefix", "delimiter", "continuation-token",
                                                  "encoding-type", "max-keys", "start-after", "marker"}:
            # s3:prefix is in the request context only when the request names a prefix
            prefix = (("s3:prefix", query["prefix"][0]),) if "prefix" in query else ()
            return [Authorization("s3:ListBucket", bucket_arn, prefix)]
        if method == "PUT" and not query:
            return [Authorization("s3:CreateBucket", bucket_arn)]
        if method == "POST" and "delete" in query:  # DeleteObjects: s3:DeleteObject on every key
            document = ElementTree.fromstring(_body_bytes(entry))
            keys = [element.text for element in document.iter() if element.tag.endswith("Key")]
            return [Authorization("s3:DeleteObject", f"{bucket_arn}/{k}") for k in keys]
    else:
        object_arn = f"{bucket_arn}/{key}"
        if method in ("GET", "HEAD") and not set(query) - {"partNumber", "versionId"}:
            return [Authorization("s3:GetObject", object_arn)]
        if method in ("PUT", "POST") and not set(query) - {"uploads", "uploadId", "partNumber"}:
            return [Authorization("s3:PutObject", object_arn)]  # multipart uploads included
        if method == "DELETE":
            return [Authorization("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject", object_arn)]
    raise AssertionError(f"no IAM mapping for S3 {method} {entry['url']}: add it to iam_evaluation.py")


def _body_bytes(entry: dict) -> bytes:
    return base64.b64decode(entry["body"]) if entry.get("body_encoded") else (entry["body"] or "").encode()


# Calls the policies refuse on purpose, with why the workflow goes on without them (the Python-level
# IAM test answers them with AccessDenied, as AWS would, and the scripts must still succeed)
DENIED_ON_PURPOSE = {
    Authorization("s3:ListAllMyBuckets", "*"): "the SageMaker SDK's default-bucket check lists every bucket "
    "through boto3's Bucket.load, which takes AccessDenied as 'creation date unknown' (boto3/s3/inject.py); the "
    "SDK then asks HeadBucket, which s3:ListBucket on that bucket allows",
}


def denied(policy: dict, entries: list[dict], account: str) -> list[str]:
    """Every authorization the recorded requests needed that the policy does not give (but those denied on
    purpose, above)."""
    return sorted({str(a) for entry in entries for a in authorizations(entry, account)
                   if a not in DENIED_ON_PURPOSE and not is_allowed(policy, a)})
