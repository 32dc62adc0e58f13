"""Which torch device and dtype a pipeline runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class Placement:
    device: str
    dtype: torch.dtype


def choose_placement(preference: Literal["auto", "cuda", "cpu"] = "auto") -> Placement:
    """CUDA with fp16 where present (and wanted), else CPU with fp32.

    Call this in the process that renders, after any fork: asking CUDA anything in a parent
    that later forks leaves the children with a CUDA state they cannot use.
    """
    if preference == "cpu":
        return Placement("cpu", torch.float32)
    if preference == "cuda" or torch.cuda.is_available():
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA device is available")
        return Placement("cuda", torch.float16)
    return Placement("cpu", torch.float32)
