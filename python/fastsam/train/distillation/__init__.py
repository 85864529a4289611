"""The distillation stack of the `distillation` config block: teacher, per-term losses, dynamic lambda.

terms.py (the losses), config.py (the block), capture.py (decoder hooks), teacher.py (the frozen teacher),
stack.py (the weighted sum), dynamic_lambda.py (the plateau schedule). Nothing is re-exported here, so that
train/config.py can import the config block without importing torch.
"""
