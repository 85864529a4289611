"""Graph simplification (onnxslim, else onnxsim) with a fall-back to the unsimplified graph."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import onnx


@dataclass
class SimplifyResult:
    """What happened to one file: ``tool`` is None when the original graph was kept."""

    tool: str | None
    nodes_before: int
    nodes_after: int
    message: str


def _run_onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def _run_onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    return simplified


SIMPLIFIERS = (("onnxslim", _run_onnxslim), ("onnxsim", _run_onnxsim))


def simplify_onnx_file(path: Path) -> SimplifyResult:
    """Simplify ``path`` in place with the first simplifier that is installed and succeeds.

    Graph input/output names and shapes are kept (checked); on any failure the file is left as it
    was and the returned message says why, so the caller can warn and carry on.

    Arguments:
      path: an .onnx file.
    Returns:
      SimplifyResult with the tool used (or None) and node counts.
    """
    path = Path(path)
    original = onnx.load(str(path))
    before = len(original.graph.node)
    failures = []
    for name, simplify in SIMPLIFIERS:
        try:
            # Simplifiers print tables and progress; keep the export's own output readable.
            with contextlib.redirect_stdout(io.StringIO()):
                simplified = simplify(original)
            _check_same_interface(original, simplified)
            onnx.checker.check_model(simplified)
        except ImportError:
            failures.append(f"{name} not installed")
            continue
        except Exception as err:  # a simplifier failing in any way must not fail the export
            failures.append(f"{name} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        onnx.save(simplified, str(path))
        after = len(simplified.graph.node)
        return SimplifyResult(name, before, after, f"{name}: {before} -> {after} nodes")
    return SimplifyResult(None, before, before, "kept the unsimplified graph (" + "; ".join(failures) + ")")


def _interface(model: onnx.ModelProto) -> list:
    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in list(model.graph.input) + list(model.graph.output)]


def _check_same_interface(original: onnx.ModelProto, simplified: onnx.ModelProto) -> None:
    if _interface(original) != _interface(simplified):
        raise RuntimeError("the simplified graph changed input/output names or shapes")
