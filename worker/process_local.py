"""One object per process: a render process's finisher, its preview publisher. Made on first
use; a forked child makes its own, because the threads and pipes of its parent's copy did not
come across the fork."""

from __future__ import annotations

import os
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    def __init__(self) -> None:
        self._value: T | None = None
        self._pid = 0

    def get(self, make: Callable[[], T]) -> T:
        """This process's object, made by `make` if it has none yet."""
        if self._value is None or self._pid != os.getpid():
            self._value, self._pid = make(), os.getpid()
        return self._value

    @property
    def current(self) -> T | None:
        """This process's object, None if it has made none."""
        return self._value if self._pid == os.getpid() else None
