#!/usr/bin/env python3
"""Re-train the best configuration with SageMaker Debugger and the profiler, wait, and read the results.

    python scripts/debug_profile.py --tuning-job dog-tune-... --image-uri IMAGE --role ROLE --data s3://BUCKET/dogImages
    python scripts/debug_profile.py -p lr=0.01 -p batch-size=64 --image-uri IMAGE --role ROLE --data s3://...

The job gets a Debugger hook saving losses, weights and gradients, the built-in rules
LossNotDecreasing, Overfit, Overtraining, VanishingGradient and PoorWeightInitialization,
system monitoring every 500 ms and the ProfilerReport rule. After it ends, the script downloads
its debug tensors, rule outputs, profiler data and output.tar.gz into --download-dir, plots train
vs valid loss to loss.png (smdebug create_trial), and prints the rule results and where the
profiler report is.

`--start-from S3_URI` fine-tunes a finished job's model further: its model.tar.gz becomes the job's
`pretrained` channel and `weights` points at it in the container (the whole classifier when the
classes are the same, else its backbone; see docs/training.md "Fine-tuning further").

`--local` runs the same job in the installed SDK's local mode (SDK 3's ModelTrainer or SDK 2's
Estimator: scripts/local_training.py) on the locally built image with a local --data folder, the
Debugger hook included. Debugger rules and the profiler are SageMaker-side services: local mode
runs the job and collects its outputs, without them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from scripts import aws, aws_errors, local_training, naming
from scripts.estimator import DEFAULT_MAX_RUN_HOURS, check_hyperparameters, parse_hyperparameters
from scripts.job_logs import wait_for_training_job
from scripts.training_requests import TrainingJobSpec, create_training_job
from scripts.tune import require_best_training_job
from train.errors import UsageError

DEBUG_RULES = ("loss_not_decreasing", "overfit", "overtraining", "vanishing_gradient", "poor_weight_initialization")
SAVE_INTERVAL = "10"  # steps between saved tensors: enough points for the rules, little overhead
LOCAL_TENSORS = "/opt/ml/output/tensors"  # SageMaker's default LocalPath; local mode packs it into output.tar.gz
LOCAL_HOOK_CHANNEL = "debughookconfig"
LOCAL_HOOK_ENVIRONMENT = {"SMDEBUG_CONFIG_FILE_PATH": f"/opt/ml/input/data/{LOCAL_HOOK_CHANNEL}/debughookconfig.json"}
SYSTEM_MONITOR_MILLIS = 500
# LossNotDecreasing compares saved losses at least num_steps apart. With losses saved every 10 steps its
# default of 10 would compare single minibatches 10 steps apart, which noise alone trips; 500 is the
# distance the rule has with its own collection settings, and the training job's in-process rule too.
LOSS_CHECK_STEPS = "500"
LOSS_PLOT = Path(__file__).with_name("loss_plot.py")
LOSS_PLOT_TIMEOUT = 300
RULE_POLL_SECONDS = 30
PRETRAINED_CHANNEL = "/opt/ml/input/data/pretrained"  # where SageMaker puts the `pretrained` channel's file


def data_location(value: str) -> str:
    return value if value.startswith("s3://") else str(aws.existing_dir(value).resolve())


def start_from_location(value: str) -> str:
    if value.startswith("s3://"):
        return aws.s3_uri(value)
    if not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"expected an S3 URI or an existing model.tar.gz, got {value!r}")
    return str(Path(value).resolve())


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/debug_profile.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuning-job", type=aws.name, help="take the best trial's hyperparameters from this job")
    parser.add_argument("--hyperparameter", "-p", action="append", default=[], metavar="NAME=VALUE",
                        help="hyperparameter of the job, over the tuning job's (repeatable)")
    parser.add_argument("--image-uri", type=aws.local_or_registry_image, required=True, help="the training image")
    parser.add_argument("--role", type=aws.role_arn, required=True, help="SageMaker execution role ARN")
    parser.add_argument("--data", type=data_location, required=True,
                        help="S3 prefix (a local folder with --local) holding train/ valid/ test/")
    parser.add_argument("--start-from", type=start_from_location, metavar="S3_URI|FILE",
                        help="a finished job's model.tar.gz to fine-tune further (a local file with --local)")
    parser.add_argument("--instance-type", type=aws.instance_type, default="ml.g4dn.xlarge",
                        help="default ml.g4dn.xlarge")
    parser.add_argument("--output-path", type=aws.s3_uri,
                        help="job outputs (default: s3://<default bucket>/dog-classifier/debug)")
    parser.add_argument("--download-dir", type=Path, help="where results land (default runs/debug/<job name>)")
    parser.add_argument("--max-run-hours", type=float, default=DEFAULT_MAX_RUN_HOURS)
    parser.add_argument("--job-name", type=aws.name, help="training job name (default: dog-debug-<timestamp>)")
    parser.add_argument("--no-logs", action="store_true", help="do not stream the job's log while waiting")
    parser.add_argument("--rules-timeout-minutes", type=float, default=30,
                        help="how long to wait for the rule evaluations after the job (default 30)")
    parser.add_argument("--local", action="store_true", help="SageMaker local mode on this machine (docker)")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    aws.require_registry_image_unless_local(parser, args)
    if not args.tuning_job and not args.hyperparameter:
        parser.error("give --tuning-job or the hyperparameters (-p lr=0.01 -p batch-size=64 ...)")
    if args.local and args.data.startswith("s3://"):
        parser.error(f"argument --data: --local trains on a local folder, got {args.data}")
    if not args.local and not args.data.startswith("s3://"):
        parser.error(f"argument --data: expected an S3 URI like s3://bucket/dogImages (or add --local), "
                     f"got {args.data}")
    if args.local and args.tuning_job:
        parser.error("argument --tuning-job: not with --local; pass the hyperparameters with -p")
    if args.start_from and args.local != (not args.start_from.startswith("s3://")):
        parser.error(f"argument --start-from: {'--local takes a local file' if args.local else 'expected an S3 URI'}"
                     f", got {args.start_from}")
    if args.start_from:
        if any(pair.partition("=")[0].strip().lstrip("-") == "weights" for pair in args.hyperparameter):
            parser.error("argument --start-from: it sets the weights hyperparameter; drop -p weights=...")
        args.hyperparameter.append(f"weights={PRETRAINED_CHANNEL}/{Path(args.start_from).name}")
    try:
        args.overrides = parse_hyperparameters(args.hyperparameter)
    except UsageError as error:
        parser.error(f"argument --hyperparameter: {error}")
    return args


def tuned_hyperparameters(client, tuning_job_name: str) -> dict[str, str]:
    """The best trial's full hyperparameters: the tuning job's static ones plus the tuned ones."""
    best = require_best_training_job(client, tuning_job_name)
    merged = {**best["static_hyperparameters"], **best["hyperparameters"]}
    # SageMaker's own keys, and JSON-quoted values from framework estimators ("\"64\"")
    return {name: value.strip('"') for name, value in merged.items() if not name.startswith(("_", "sagemaker_"))}


def debugger():
    """SageMaker Debugger's configuration classes, the same in both SDKs: sagemaker.debugger in SDK 2,
    sagemaker.core.debugger in SDK 3. The scripts use them to write the request's Debugger fields only."""
    try:
        import sagemaker.core.debugger as module
    except ImportError:
        import sagemaker.debugger as module
    return module


def every_save_interval(configurations: list[dict]) -> list:
    return [debugger().CollectionConfig(c["CollectionName"],
                                        {**c.get("CollectionParameters", {}), "save_interval": SAVE_INTERVAL})
            for c in configurations]


def hook_collections() -> list:
    """What the job's Debugger hook saves, on SageMaker and in local mode alike."""
    return every_save_interval([{"CollectionName": name} for name in ("losses", "weights", "gradients")])


def write_local_hook_config(folder: Path) -> Path:
    """debughookconfig.json as SageMaker writes it into a job's input/config for the DebuggerHookConfig
    above (tensors to LocalPath, the same collections and save interval). Local mode writes no such file:
    this one reaches the job as a channel, named by SMDEBUG_CONFIG_FILE_PATH (LOCAL_HOOK_ENVIRONMENT)."""
    request = debugger().DebuggerHookConfig(s3_output_path="s3://unused/debug", collection_configs=hook_collections())
    config = {key: value for key, value in request._to_request_dict().items() if key != "S3OutputPath"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "debughookconfig.json"
    path.write_text(json.dumps({**config, "LocalPath": LOCAL_TENSORS}, indent=2))
    return path


def debugging_fields(output_path: str, job_name: str, region: str) -> dict:
    """CreateTrainingJob's Debugger, profiler and TensorBoard fields, as SDK 2's Estimator filled them in from
    the same configuration (built-in rules on the region's rule image, every collection a rule reads saved by
    the hook too)."""
    sdk = debugger()
    rules = []
    for name in DEBUG_RULES:
        # The rules' own collections default to every 500 steps: a 5-epoch dogImages job would save ~1.
        base = getattr(sdk.rule_configs, name)()
        parameters = {"num_steps": LOSS_CHECK_STEPS} if name == "loss_not_decreasing" else None
        rules.append(sdk.Rule.sagemaker(base, rule_parameters=parameters, collections_to_save=every_save_interval(
            base.get("CollectionConfigurations", [])) or None))
    profiler_rule = sdk.ProfilerRule.sagemaker(sdk.rule_configs.ProfilerReport())
    for rule in [*rules, profiler_rule]:
        rule.image_uri = sdk.get_rule_container_image_uri(rule.name, region)
        rule.instance_type = rule.volume_size_in_gb = None  # a built-in rule runs where SageMaker puts it
    collections = {collection.name: collection for rule in rules for collection in rule.collection_configs}
    collections.update((collection.name, collection) for collection in hook_collections())
    hook = sdk.DebuggerHookConfig(s3_output_path=output_path, collection_configs=list(collections.values()))
    return {
        "DebugHookConfig": hook._to_request_dict(),
        "DebugRuleConfigurations": [rule.to_debugger_rule_config_dict() for rule in rules],
        # System metrics only: framework profiling is deprecated from PyTorch 2.0.
        "ProfilerConfig": sdk.ProfilerConfig(s3_output_path=output_path,
                                             system_monitor_interval_millis=SYSTEM_MONITOR_MILLIS)._to_request_dict(),
        "ProfilerRuleConfigurations": [profiler_rule.to_profiler_rule_config_dict()],
        # The training program writes event files to /opt/ml/output/tensorboard; SageMaker uploads
        # them here while the job runs (under the job's name, so they download with the rest).
        "TensorBoardOutputConfig": {"S3OutputPath": f"{output_path}/{job_name}/tensorboard"},
    }


def download_job_outputs(s3, output_path: str, job_name: str, destination: Path) -> list[Path]:
    """Everything the job wrote under <output_path>/<job>/ but the model (debug, rules, profiler, report)."""
    bucket, prefix, keys = aws.s3_keys(s3, f"{output_path}/{job_name}")
    relatives = [(key, key[len(prefix) + 1:]) for key in keys]
    wanted = [(key, relative) for key, relative in relatives
              if relative and not relative.endswith(("/", "model.tar.gz"))]
    # every key checked before the first download: a refused one leaves nothing half-written
    targets = [(key, aws.local_path(destination, relative, key)) for key, relative in wanted]
    files = []
    for key, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        files.append(target)
    return files


def unpack_outputs(destination: Path) -> None:
    """output.tar.gz holds the job's own report (evaluation.json, confusion matrix, ...)."""
    for archive in destination.rglob("output.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(archive.parent / "data", filter="data")


def plot_losses(destination: Path) -> str:
    # SageMaker uploads the tensors to <job>/debug-output; local mode packs LocalPath into output.tar.gz
    debug_dir = (next((path for path in destination.rglob("debug-output") if path.is_dir()), None)
                 or next((path for path in destination.rglob(Path(LOCAL_TENSORS).name) if (path / "index").is_dir()),
                         None))
    if debug_dir is None:
        return "no debug tensors were written (was the Debugger hook active in the job?)"
    png = destination / "loss.png"
    try:  # smdebug waits for steps of a trial that has not ended: bound it (its own process: protobuf)
        result = subprocess.run([sys.executable, str(LOSS_PLOT), str(debug_dir), str(png)],
                                capture_output=True, text=True, timeout=LOSS_PLOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"no loss plot: smdebug still waits for the trial in {debug_dir} to end"
    if result.returncode != 0:
        return f"no loss plot: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'failed'}"
    lines = [f"loss plot: {png}"]
    for series in json.loads(result.stdout.strip().splitlines()[-1]):
        mode = "valid" if series["mode"] == "EVAL" else "train"
        lines.append(f"  {mode} {series['tensor']}: {series['first']:.4f} -> {series['last']:.4f} "
                     f"over {series['steps']} saved steps")
    return "\n".join(lines)


def rule_summary(description: dict) -> list[str]:
    statuses = _rule_statuses(description)
    if not statuses:
        return ["rules: no rule evaluations reported for this job"]
    width = max(len(status["RuleConfigurationName"]) for status in statuses)
    lines = ["rules:"]
    for status in statuses:
        detail = f"  {status['StatusDetails']}" if status.get("StatusDetails") else ""
        lines.append(f"  {status['RuleConfigurationName']:{width}}  {status['RuleEvaluationStatus']}{detail}")
    return lines


def job_hyperparameters(args, client) -> dict[str, str]:
    """The tuning job's best trial's (if given), overridden by -p, checked like the job will check them."""
    hyperparameters = tuned_hyperparameters(client, args.tuning_job) if args.tuning_job else {}
    hyperparameters.update(args.overrides)
    try:
        check_hyperparameters(hyperparameters)
    except UsageError as error:
        raise SystemExit(f"error: the job's hyperparameters {hyperparameters}: {error}") from None
    return hyperparameters


def run_sagemaker_job(args, boto, hyperparameters: dict, job_name: str) -> dict:
    """Start the job on SageMaker, print its log, wait; its description (a failed job is described too)."""
    output_path = args.output_path or f"s3://{aws.default_bucket(boto)}/dog-classifier/debug"
    channels = {"training": args.data, **({"pretrained": args.start_from} if args.start_from else {})}
    spec = TrainingJobSpec(image_uri=args.image_uri, role=args.role, instance_type=args.instance_type,
                           channels=channels, output_path=output_path, hyperparameters=hyperparameters,
                           max_run_hours=args.max_run_hours)
    boto.client("sagemaker").create_training_job(
        **create_training_job(spec, job_name, debugging_fields(output_path, job_name, boto.region_name)))
    return wait_for_training_job(boto, job_name, show_logs=not args.no_logs)


def run_local_job(args, boto, hyperparameters: dict, job_name: str, destination: Path) -> dict:
    """The same job in the SDK's local mode (docker compose) on this machine; its description. The hook runs
    in the job itself, so local mode gets it too, through a channel (write_local_hook_config); Debugger's rules
    and the profiler are SageMaker services (the job's own rules and report stand in for them)."""
    hook_folder = write_local_hook_config(destination / LOCAL_HOOK_CHANNEL).parent
    channels = {"training": Path(args.data), LOCAL_HOOK_CHANNEL: hook_folder}
    if args.start_from:
        channels["pretrained"] = Path(args.start_from)
    job = local_training.LocalJob(image_uri=args.image_uri, role=args.role, hyperparameters=hyperparameters,
                                  channels=channels, environment=LOCAL_HOOK_ENVIRONMENT, job_name=job_name,
                                  destination=destination, max_run_hours=args.max_run_hours, logs=not args.no_logs)
    return local_training.run(job, boto)


def wait_for_rules(client, job_name: str, description: dict, timeout: float) -> dict:
    """Rules run as their own jobs after the training job: wait until none is InProgress (or timeout)."""
    deadline = time.monotonic() + timeout
    while any(status["RuleEvaluationStatus"] == "InProgress" for status in _rule_statuses(description)):
        if time.monotonic() >= deadline:
            print(f"rules still running after {timeout:.0f} s; the console shows their results later")
            break
        print("waiting for the rule evaluations ...", flush=True)
        time.sleep(RULE_POLL_SECONDS)
        description = client.describe_training_job(TrainingJobName=job_name)
    return description


def in_job_rule_summary(destination: Path) -> list[str]:
    """The training program's own rules (rules.json in output.tar.gz), evaluated in the job itself."""
    found = next(destination.rglob("rules.json"), None)
    if found is None:
        return ["in-job rules: no rules.json in the job's output (ran with --diagnostics false?)"]
    rules = json.loads(found.read_text())
    width = max((len(rule["rule"]) for rule in rules), default=0)
    report = found.with_name("report.html")
    return ([f"in-job rules ({found}):"] + [f"  {rule['rule']:{width}}  {rule['status']}  {rule['message']}"
                                             for rule in rules] + [f"training report: {report}"])


def _rule_statuses(description: dict) -> list[dict]:
    return description.get("DebugRuleEvaluationStatuses", []) + description.get("ProfilerRuleEvaluationStatuses", [])


def print_results(destination: Path, description: dict) -> None:
    unpack_outputs(destination)
    print(plot_losses(destination))
    print("\n".join(rule_summary(description)))
    print("\n".join(in_job_rule_summary(destination)))
    report = next(destination.rglob("profiler-report.html"), None)
    print(f"profiler report: {report}" if report else
          "profiler report: not written (the ProfilerReport rule runs on SageMaker, minutes after the job)")
    evaluation = next(destination.rglob("evaluation.json"), None)
    if evaluation:
        print(f"test accuracy: {json.loads(evaluation.read_text()).get('accuracy')} ({evaluation})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    client = boto.client("sagemaker")
    hyperparameters = job_hyperparameters(args, client)
    print("hyperparameters: " + " ".join(f"{name}={value}" for name, value in sorted(hyperparameters.items())))
    job_name = args.job_name or naming.timestamped("dog-debug")
    destination = (args.download_dir or Path("runs/debug")) / job_name
    if args.local:
        description = run_local_job(args, boto, hyperparameters, job_name, destination)
    else:
        description = run_sagemaker_job(args, boto, hyperparameters, job_name)
    status = description["TrainingJobStatus"]
    print(f"training job: {job_name} ({status})")
    if args.local:
        print(f"model: {destination / 'model.tar.gz'}")
    else:
        print(f"console: {aws.console_url(boto.region_name, 'jobs', job_name)}")
        description = wait_for_rules(client, job_name, description, args.rules_timeout_minutes * 60)
        output_path = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        files = download_job_outputs(boto.client("s3"), output_path, job_name, destination)
        print(f"downloaded {len(files)} files to {destination}")
    print_results(destination, description)
    if status != "Completed":
        print(f"error: the job ended {status}: {description.get('FailureReason', '')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
