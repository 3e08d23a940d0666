"""`errors`: log what went wrong while answering, one line each, or consolidated.

Syntax (CoreDNS's)::

    errors {
        stacktrace
        consolidate DURATION REGEXP [LEVEL] [show_first]
    }

A line reads ``[ERROR] plugin/errors: 2 example.org. A: <what happened>``
(2 is SERVFAIL's code). With ``consolidate``, messages matching REGEXP are
counted for DURATION after the first one and reported as ``N errors like
'REGEXP' occurred in last DURATION``; with ``show_first`` the first one is
also logged at once.
"""

from __future__ import annotations

import logging
import re

import attrs
import dns.rcode
import dns.rdatatype
from twisted.python.failure import Failure

from ..corefile import Directive
from .request import Request
from ..plugin import PluginSpec

__all__ = ["ErrorsConfig", "Consolidation", "setup_errors", "ErrorLog"]

LEVELS = {"warning": logging.WARNING, "error": logging.ERROR, "info": logging.INFO, "debug": logging.DEBUG}

errors_logger = logging.getLogger("wayfinder.errors")


@attrs.frozen
class Consolidation:
    period: float
    period_text: str
    pattern: str
    level: int = logging.ERROR
    show_first: bool = False


@attrs.frozen
class ErrorsConfig:
    stacktrace: bool = False
    consolidations: tuple[Consolidation, ...] = ()


def setup_errors(directive: Directive, ctx) -> ErrorsConfig:
    directive.expect_args(0, 0, "errors { stacktrace; consolidate DURATION REGEXP [LEVEL] [show_first] }")
    stacktrace = False
    consolidations = []
    for option in directive.block:
        if option.name == "stacktrace":
            option.expect_args(0, 0, "stacktrace")
            stacktrace = True
        elif option.name == "consolidate":
            option.expect_args(2, 4, "consolidate DURATION REGEXP [LEVEL] [show_first]")
            period = option.duration(option.args[0], "consolidate")
            pattern = option.args[1]
            if len(pattern) > 10000:
                raise option.error("consolidate: REGEXP must not exceed 10000 characters")
            try:
                re.compile(pattern)
            except re.error as e:
                raise option.error(f"consolidate: {pattern!r} is not a regular expression: {e}") from None
            level, show_first = logging.ERROR, False
            for extra in option.args[2:]:
                if extra == "show_first":
                    show_first = True
                elif extra in LEVELS:
                    level = LEVELS[extra]
                else:
                    raise option.error(f"consolidate: unknown log level {extra!r} (expected warning, error, info or debug)")
            consolidations.append(Consolidation(period, option.args[0], pattern, level, show_first))
        else:
            raise option.error(f"errors: unknown property {option.name!r}")
    return ErrorsConfig(stacktrace, tuple(consolidations))


class ErrorLog:
    """Logs the failures of one server block, consolidating as configured."""

    def __init__(self, config: ErrorsConfig, reactor, logger: logging.Logger = errors_logger):
        self.config = config
        self.reactor = reactor
        self.logger = logger
        self._patterns = [re.compile(c.pattern) for c in config.consolidations]
        self._counts = [0] * len(config.consolidations)

    def __call__(self, request: Request, failure: Failure) -> None:
        reason = failure.getErrorMessage() or failure.type.__name__
        message = f"{dns.rcode.SERVFAIL} {request.qname} {dns.rdatatype.to_text(request.qtype)}: {reason}"
        for index, pattern in enumerate(self._patterns):
            if pattern.search(message):
                self._consolidate(index, message)
                return
        if self.config.stacktrace:
            message += "\n" + failure.getTraceback()
        self.logger.error(message)

    def _consolidate(self, index: int, message: str) -> None:
        rule = self.config.consolidations[index]
        self._counts[index] += 1
        if self._counts[index] == 1:
            if rule.show_first:
                self.logger.log(rule.level, message)
            self.reactor.callLater(rule.period, self._report, index)

    def _report(self, index: int) -> None:
        rule = self.config.consolidations[index]
        count, self._counts[index] = self._counts[index], 0
        if count > 1 or not rule.show_first:
            self.logger.log(rule.level, f"{count} errors like '{rule.pattern}' occurred in last {rule.period_text}")


# The server calls the block's ErrorLog for each failure (`BlockRuntime.error_log`).
PLUGINS = (PluginSpec("errors", setup_errors, served_by_server=True),)
