"""The AWS errors a user can fix, as one line: what went wrong and what to do. A script's traceback only
with --debug (a bug of ours still shows one: only the errors below are explained away).

Error codes: AWS's Common Errors list (IAM, STS and every query API), SageMaker's API reference
(ResourceLimitExceeded) and botocore's exceptions for what fails before a request is sent.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
REJECTED = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidAccessKeyId",
            "AuthFailure", "IncompleteSignature"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
             "RequestLimitExceeded", "SlowDown", "RequestThrottled", "RequestThrottledException"}


class RefusedData(Exception):
    """Something read from AWS that a script will not act on (an S3 key that would be written outside its
    folder): the message is the one line to show."""


def explain(error: BaseException) -> str | None:
    """One line naming the cause and the fix, or None for an error this module does not know."""
    from botocore import exceptions

    if isinstance(error, RefusedData):
        return str(error)

    sso_names = ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError")
    sso_expired = tuple(getattr(exceptions, name) for name in sso_names if hasattr(exceptions, name))
    if isinstance(error, exceptions.NoCredentialsError):
        return ("no AWS credentials found: run `aws configure` (or `aws sso login --profile NAME` and pass "
                "--profile NAME), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(error, exceptions.PartialCredentialsError):
        return f"incomplete AWS credentials ({error}): set the missing part, or use a profile with --profile"
    if isinstance(error, exceptions.NoRegionError):
        return "no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in your profile)"
    if sso_expired and isinstance(error, sso_expired):
        return f"your AWS SSO session is over ({error}): run `aws sso login` (with --profile NAME) and run again"
    if isinstance(error, exceptions.EndpointConnectionError):
        return f"cannot reach AWS ({error}): check the network, a proxy, and --region"
    if not isinstance(error, exceptions.ClientError):
        return None
    code = error.response.get("Error", {}).get("Code", "")
    message = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())
    operation = error.operation_name
    if code in EXPIRED:
        return (f"your AWS credentials have expired ({code} on {operation}): get new ones (`aws sso login`, or a new "
                "session token) and run again")
    if code in REJECTED:
        return (f"AWS does not accept these credentials ({code} on {operation}): check the access key and secret, "
                "the session token that goes with them, and --profile")
    if code in DENIED:
        return (f"access denied to {operation} ({message}): the identity running this script needs the operator "
                "policy that `python scripts/iam_policies.py` renders")
    if code in THROTTLED:
        return (f"AWS is throttling {operation} ({code}) after the SDK's own retries: wait a minute and run again, "
                "or run fewer scripts at once")
    if code == "ResourceLimitExceeded":
        return (f"{message} ({operation}): ask for more in the Service Quotas console (SageMaker), or pick another "
                "instance type or fewer instances")
    return None


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """A script's entry point: main's exit status, or 1 and one line on stderr for an explained AWS error."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except Exception as error:
        reason = explain(error)
        if reason is None or "--debug" in argv:
            raise
        print(f"error: {reason} (--debug shows the traceback)", file=sys.stderr)
        return 1
