"""Utilities: image/prompt transforms, mask-generator helpers, NMS."""
