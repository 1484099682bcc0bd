"""SAGEMAKER_PROGRAM of the training image: the toolkit runs it with the hyperparameters as flags."""

import sys

from train.cli import main

sys.exit(main())
