"""Wait for a SageMaker training job and print its CloudWatch log as it comes, with boto3 alone (what SDK 2's
Estimator.fit(logs="All") did; SDK 3 has no Estimator).

SageMaker writes a job's log to the group /aws/sagemaker/TrainingJobs, one stream per host, named
<job>/algo-<n>-<epoch seconds>; the group and the streams appear once the first host starts.
"""

from __future__ import annotations

import time

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
POLL_SECONDS = 10
ENDED = ("Completed", "Failed", "Stopped")


def wait_for_training_job(boto, name: str, show_logs: bool = True, sleep=time.sleep) -> dict:
    """DescribeTrainingJob's answer once the job has ended; its log lines printed on the way if show_logs."""
    sagemaker, logs = boto.client("sagemaker"), boto.client("logs") if show_logs else None
    positions: dict[str, str] = {}  # stream -> the token after the last event printed
    while True:
        description = sagemaker.describe_training_job(TrainingJobName=name)
        ended = description["TrainingJobStatus"] in ENDED
        if show_logs:
            print_new_events(logs, name, positions)  # after the describe: an ended job's last lines are in
        if ended:
            return description
        sleep(POLL_SECONDS)


def print_new_events(logs, job_name: str, positions: dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    try:
        streams = [stream["logStreamName"] for stream in logs.describe_log_streams(
            logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/", orderBy="LogStreamName")["logStreams"]]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return  # no host has started yet
        raise
    for stream in streams:
        host = stream.split("/")[1].rsplit("-", 1)[0] if len(streams) > 1 else None
        while True:
            token = positions.get(stream)
            page = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True,
                                       **({"nextToken": token} if token else {}))
            for event in page["events"]:
                print(f"[{host}] {event['message']}" if host else event["message"], flush=True)
            if page["nextForwardToken"] == token:  # the same token again: nothing newer yet
                break
            positions[stream] = page["nextForwardToken"]
