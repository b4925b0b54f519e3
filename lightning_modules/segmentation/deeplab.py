"""DeepLabV3+ MobileNetV2 trained on ADE20K (150 classes), run by TorchScript or LiteRT.

The model (``shared/weights/segmentation``, see its README) takes a fixed float32
[1, 513, 513, 3] NHWC RGB input in [-1, 1] and returns [1, 513, 513, 151] NHWC logits.
An image is resized so its long side is ``long_side``, put at the top-left of a
zero-filled (mean-grey) 513x513 canvas, and the logits of the valid region are resized
bilinearly back to the image size before the argmax.
"""

import warnings
from pathlib import Path
from typing import Literal, Optional, Sequence

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from mobile2dslr.errors import UserError, WeightsError

from .ade20k import ADE20K_LABELS, DEFAULT_ADE20K_GROUPS
from .base import Segmenter

__all__ = ["DeepLabADE20K"]

_CANVAS = 513
_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ptl", ".torchscript")
# Channels resized per step before the argmax: bounds memory at full resolution
# (16 float maps of a 12 MP photo: 800 MB instead of 7 GB for all 151).
_ARGMAX_CHUNK = 16


class DeepLabADE20K(Segmenter):
    """ADE20K semantic segmentation with DeepLabV3+ MobileNetV2 (offline weights).

    The model is loaded from ``path`` and kept out of ``state_dict``: checkpoints store
    only the constructor arguments. It runs on the CPU; labels are returned on the
    device of the input.

    Args:
        path: The model file: TorchScript (``.pt``) or TFLite (``.tflite``), e.g.
            ``../shared/weights/segmentation/deeplabv3_mnv2_ade20k_513_torchscript.pt``.
        runtime: ``torchscript``, ``litert`` (needs ``pip install '.[litert]'``), or
            ``auto`` to choose by the file extension.
        long_side: Length the image's long side is resized to before inference
            (1..513; the README's numbers use 513).
        threads: CPU threads for inference; None keeps the runtime's default. For
            TorchScript the torch thread count is set for the call and restored.

    Raises:
        WeightsError: The file is missing or cannot be loaded as the chosen runtime.
        UserError: Unknown runtime or extension, bad ``long_side``, or LiteRT missing.
    """

    label_names = ADE20K_LABELS
    default_groups = DEFAULT_ADE20K_GROUPS

    def __init__(
        self,
        path: str,
        runtime: Literal["auto", "torchscript", "litert"] = "auto",
        long_side: int = 513,
        threads: Optional[int] = None,
    ):
        super().__init__()
        if runtime == "auto":
            runtime = "litert" if Path(path).suffix.lower() == ".tflite" else "torchscript"
            if runtime == "torchscript" and Path(path).suffix.lower() not in _TORCHSCRIPT_SUFFIXES:
                raise UserError(f"{path}: cannot tell the runtime from the extension (.pt or .tflite); set runtime")
        if runtime not in ("torchscript", "litert"):
            raise UserError(f"DeepLabADE20K: unknown runtime {runtime!r} (auto, torchscript or litert)")
        if not 1 <= long_side <= _CANVAS:
            raise UserError(f"DeepLabADE20K: long_side must be in [1, {_CANVAS}], got {long_side}")
        if threads is not None and threads < 1:
            raise UserError(f"DeepLabADE20K: threads must be >= 1 or null, got {threads}")
        self.path = str(path)
        self.runtime = runtime
        self.long_side = long_side
        self.threads = threads
        # A plain attribute (not a submodule): the model never enters state_dict or .to().
        self._runner = self._load()

    def extra_repr(self) -> str:
        return f"path={self.path!r}, runtime={self.runtime!r}, long_side={self.long_side}"

    def __getstate__(self) -> dict:
        # LiteRT interpreters cannot be pickled or deep-copied: reload on first use instead.
        state = self.__dict__.copy()
        state["_runner"] = None
        return state

    def _load(self):
        file = Path(self.path)
        if not file.is_file():
            raise WeightsError(f"{file}: segmentation model file not found")
        runner = _TorchScriptRunner if self.runtime == "torchscript" else _LiteRTRunner
        return runner(file, self.threads)

    def segment(self, image: torch.Tensor, names: Optional[Sequence[str]]) -> torch.Tensor:
        if self._runner is None:
            self._runner = self._load()
        return torch.stack([self._segment_one(one) for one in image])

    def _segment_one(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        scale = self.long_side / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        # torch's antialiased bilinear matches PIL's resize and is 7x faster than
        # kornia's Gaussian pre-blur on a 3 MP photo.
        small = F.interpolate(image.float().clamp(0, 1)[None], (h, w), mode="bilinear", antialias=True)
        canvas = torch.zeros(1, _CANVAS, _CANVAS, 3)  # 0 = DeepLab's mean-grey padding
        canvas[0, :h, :w] = (small[0] * 2 - 1).permute(1, 2, 0).cpu()  # pixel / 127.5 - 1
        logits = self._runner(canvas)
        if tuple(logits.shape) != (1, _CANVAS, _CANVAS, len(ADE20K_LABELS)):
            raise WeightsError(f"{self.path}: expected [1, 513, 513, 151] logits, got {list(logits.shape)}")
        logits = logits[:, :h, :w].permute(0, 3, 1, 2).to(image.device)
        return _upsampled_argmax(logits, (height, width))


def _upsampled_argmax(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """argmax over channels of ``logits`` (1, C, h, w) resized bilinearly to ``size``: (H, W).

    Only the channels that win somewhere at (h, w) are resized (typically 5-20 of 151,
    8x faster). A channel that wins nowhere can win after interpolation only on thin
    strips between two other labels where it is a close runner-up on both sides.
    """
    candidates = logits[0].argmax(dim=0).unique()
    best_value = best_index = None
    for chunk in candidates.split(_ARGMAX_CHUNK):
        resized = kornia.geometry.transform.resize(logits[:, chunk], size, interpolation="bilinear")
        value, index = resized[0].max(dim=0)
        index = chunk[index]
        if best_value is None:
            best_value, best_index = value, index
        else:
            better = value > best_value
            best_value = torch.where(better, value, best_value)
            best_index = torch.where(better, index, best_index)
    return best_index


class _TorchScriptRunner:
    """A traced, frozen TorchScript model: NHWC float32 tensor in, NHWC logits out."""

    def __init__(self, path: Path, threads: Optional[int]):
        self.threads = threads
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is "deprecated"
                self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as error:  # torch raises RuntimeError, ValueError, pickle errors...
            raise WeightsError(f"{path}: cannot load as a TorchScript model ({_one_line(error)})") from None

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                return self.model(canvas)
        finally:
            torch.set_num_threads(previous)


class _LiteRTRunner:
    """A TFLite model run by LiteRT (``ai-edge-litert``): NHWC float32 in, NHWC logits out."""

    def __init__(self, path: Path, threads: Optional[int]):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError(f"{path}: the LiteRT runtime is not installed; run pip install '.[litert]'") from None
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as error:  # LiteRT raises ValueError/RuntimeError for bad files
            raise WeightsError(f"{path}: cannot load as a TFLite model ({_one_line(error)})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or list(inputs[0]["shape"]) != [1, _CANVAS, _CANVAS, 3]:
            shapes = [list(detail["shape"]) for detail in inputs]
            raise WeightsError(f"{path}: expected one [1, 513, 513, 3] input and one output, got inputs {shapes}")
        self.input, self.output = inputs[0], outputs[0]

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        self.interpreter.set_tensor(self.input["index"], canvas.numpy().astype(np.float32, copy=False))
        self.interpreter.invoke()
        return torch.from_numpy(self.interpreter.get_tensor(self.output["index"]).copy())


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__
