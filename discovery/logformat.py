"""Log lines on standard output, one per event, as CoreDNS writes them.

Text: ``[INFO] plugin/kubernetes: synced 12 Services ...``; query log lines
carry no component, exactly as CoreDNS's `log` plugin prints them. JSON
(``-log.format json``): one object per line with time, level, component and
msg. Twisted's own log events are routed here too.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from twisted.logger import LogLevel, globalLogBeginner, formatEvent

__all__ = ["configure", "component_of"]

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}
_QUERY_LOG = "wayfinder.querylog"


def component_of(logger_name: str) -> str:
    """'wayfinder.kubernetes' -> 'plugin/kubernetes'; '' for query lines."""
    if logger_name == _QUERY_LOG:
        return ""
    if logger_name.startswith("wayfinder."):
        return "plugin/" + logger_name.split(".", 1)[1]
    return logger_name


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelno, record.levelname)
        component = component_of(record.name)
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return f"[{level}] {component}: {message}" if component else f"[{level}] {message}"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": _LEVELS.get(record.levelno, record.levelname).lower(),
            "component": component_of(record.name) or "query",
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


_TWISTED_LEVELS = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.DEBUG,  # Twisted's chatter ("Starting factory") is noise here.
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}


def _twisted_observer(event: dict) -> None:
    level = _TWISTED_LEVELS.get(event.get("log_level"), logging.INFO)
    logger = logging.getLogger("twisted")
    if not logger.isEnabledFor(level):
        return
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text += "\n" + failure.getTraceback()
    logger.log(level, text)


def configure(fmt: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Send every log line to stdout in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    globalLogBeginner.beginLoggingTo([_twisted_observer], redirectStandardIO=False, discardBuffer=True)
