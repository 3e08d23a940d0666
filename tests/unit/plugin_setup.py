"""Helpers for a directive's unit tests: its setup from Corefile text, its handler run once."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from discovery.config import SetupContext
from discovery.corefile import CorefileError, parse
from discovery.dns.request import Request


def setup_of(setup: Callable, text: str, zones: tuple[str, ...] = (".",)) -> Any:
    """The config `setup` makes of the first directive of a one-block Corefile holding text."""
    block = parse(f"{' '.join(zones)} {{\n{text}\n}}\n", "Corefile")[0]
    return setup(block.directives[0], SetupContext(zones, "Corefile", 1))


def setup_error(setup: Callable, text: str, zones: tuple[str, ...] = (".",), line: int = 2) -> CorefileError:
    """The error `setup` raises for text, naming the Corefile and the line at fault (the directive's is 2)."""
    with pytest.raises(CorefileError) as caught:
        setup_of(setup, text, zones)
    assert (caught.value.file, caught.value.line) == ("Corefile", line)
    return caught.value


class Recorder:
    """The next plugin: remembers the request it was passed and answers with `respond(request)`."""

    def __init__(self, respond: Callable[[Request], Any] | None = None):
        self.requests: list[Request] = []
        self._respond = respond or (lambda request: request.reply())

    def __call__(self, request: Request):
        self.requests.append(request)
        return self._respond(request)

    @property
    def called(self) -> bool:
        return bool(self.requests)
