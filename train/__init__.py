"""Training side of the image-classifier containers: the SageMaker training contract."""
