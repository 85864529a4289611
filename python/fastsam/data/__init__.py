"""Datasets for training: folder and COCO sources, resize/pad geometry, GT prompts, synthetic data."""
