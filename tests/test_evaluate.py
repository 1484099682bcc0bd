"""train.engine.evaluate on a stand-in model (its plumbing, not a network's numbers)."""

from __future__ import annotations

import torch

from train.engine import Precision, evaluate
from train.progress import Progress


def test_evaluation_runs_without_autograd_and_keeps_each_images_answer_in_order():
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    grad_enabled = []

    class Spy(torch.nn.Module):
        def forward(self, inputs):
            grad_enabled.append(torch.is_grad_enabled())
            return linear(inputs)

    batches = [(torch.randn(2, 4), torch.tensor([0, 1])), (torch.randn(3, 4), torch.tensor([2, 2, 0]))]
    with Progress("test", len(batches), enabled=False) as progress:
        result = evaluate(Spy(), batches, Precision.for_device(torch.device("cpu")), None, 3, progress,
                          per_image_of=5)
    assert grad_enabled == [False, False]  # no graph kept for eval (a misplaced decorator once dropped this)
    with torch.no_grad():
        probabilities = torch.softmax(linear(torch.cat([images for images, _ in batches])), 1)
    assert result.predictions[:, 0].tolist() == probabilities.argmax(1).tolist()
    assert torch.allclose(result.predictions[:, 1], probabilities.max(1).values.double())
    assert result.confusion.sum() == 5 and result.accuracy == result.confusion.diag().sum().item() / 5
    assert evaluate(Spy(), batches, Precision.for_device(torch.device("cpu")), None, 3,
                    Progress("test", 2, enabled=False)).predictions is None
