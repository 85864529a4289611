"""The manifest's ``variants``: which model file serves which role at each precision.

The runtime picks its files by ``precision=`` alone; this table is what it reads. A variant may mix
precisions: ``fp16`` is the fp16 encoder with the fp32 decoders (the decoders are small, take a few
per cent of the time, and their fp32 parity is the one the gate checked), and ``int8`` is the int8
encoder and decoders without the split decoder (exported in fp32 only).
"""
from __future__ import annotations

from . import io_spec

ROLES = io_spec.EXPORTED_MODELS  # a role is named after the fp32 model that serves it


def variant_table(models: dict) -> dict[str, dict[str, str]]:
    """precision -> role -> manifest model key, for the precisions whose encoder was written.

    Arguments:
      models: the manifest's ``models`` (keys such as ``encoder``, ``encoder_int8``, ``encoder_fp16``).
    Raises:
      ValueError: the fp32 models are incomplete (every variant falls back on them).
    """
    missing = [role for role in ROLES if role not in models]
    if missing:
        raise ValueError(f"cannot build the manifest's variants: fp32 models {missing} were not written")
    table = {"fp32": {role: role for role in ROLES}}
    if io_spec.variant_key(io_spec.ENCODER, "int8") in models:
        table["int8"] = {role: io_spec.variant_key(role, "int8") for role in io_spec.BASE_MODELS}
    if io_spec.variant_key(io_spec.ENCODER, "fp16") in models:
        table["fp16"] = {**table["fp32"], io_spec.ENCODER: io_spec.variant_key(io_spec.ENCODER, "fp16")}
    for precision, roles in table.items():
        absent = sorted(key for key in roles.values() if key not in models)
        if absent:
            raise ValueError(f"variant {precision} names models that were not written: {absent}")
    return table
