"""What SageMaker Debugger and its profiler told the original Udacity project, computed in the training process itself.

    record.py          the numbers one run leaves: step losses and phase times, gradient statistics,
                       activation variances, epochs, class counts, system samples
    recorder.py        fills the record from the training loop (every step, on rank 0)
    step_timer.py      per-step phase timings (data wait, forward, backward, optimizer step)
    system_monitor.py  CPU, memory and GPU sampled in a background thread
    torch_profile.py   an optional torch.profiler trace of a window of steps (--profile-steps)
    rules.py           SageMaker's built-in rules, same names and default thresholds -> rules.json
    tensorboard.py     event files where SageMaker's TensorBoardOutputConfig looks
    html_report.py     one self-contained HTML page with the plots and the rules
    session.py         the one object the trainer talks to
    settings.py        the flags: --diagnostics, --profile-steps, and every rule threshold
"""
