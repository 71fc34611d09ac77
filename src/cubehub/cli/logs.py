"""Log lines of long commands (``cubehub run``, ``cubehub gapfill``): one line per record,
tracebacks only with ``--debug``.

distributed and tornado install their own stderr handlers, which print the traceback of
every exception they log: a scheduler killed mid-run gave forty lines from
``distributed.client`` after cubehub's own one-line error. :func:`configure_logging` sends
every logger through one handler whose records show their message only, unless the user
asked for tracebacks with ``--debug``.
"""

from __future__ import annotations

import logging
import sys

import click

__all__ = ["configure_logging", "long_command_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that distributed's logging configuration gives handlers of their own, and the
#: level each shows without ``--debug`` (a local cluster's scheduler and nannies run in
#: this process and log every worker's coming and going at INFO).
_OWN_HANDLERS = {
    "distributed": logging.WARNING,
    "tornado": logging.CRITICAL,
    "tornado.application": logging.ERROR,
    "bokeh": logging.ERROR,
}


class _Formatter(logging.Formatter):
    """The message of a record; its traceback (``exc_info``, ``stack_info``) only with ``debug``."""

    def __init__(self, debug: bool) -> None:
        super().__init__(FORMAT)
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        if self.debug:
            return super().format(record)
        brief = logging.makeLogRecord(record.__dict__)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            brief.msg, brief.args = f"{record.getMessage()} ({type(exc).__name__}: {exc})", None
        brief.exc_info = brief.exc_text = brief.stack_info = None
        return " ".join(super().format(brief).split())


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]  # its stream is a property
    """Writes to whatever ``sys.stderr`` is when a record comes (as logging's last resort
    does), so a command run in-process (click's test runner) never keeps a closed stream."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def configure_logging(debug: bool, level: int = logging.INFO) -> None:
    """One stderr handler for every logger, at ``level``; tracebacks only with ``debug``.

    Called again, it replaces its own handler and keeps others (a test runner's).
    """
    handler = _Stderr()
    handler.setFormatter(_Formatter(debug))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _OWN_HANDLERS.items():
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level if debug else max(level, quiet))


def long_command_logging(ctx: click.Context) -> None:
    """A long command's logging: INFO lines (a line per tile), and with ``cubehub --debug``
    tracebacks and a local cluster's worker logs at INFO too."""
    import dask.config

    debug = bool(ctx.find_root().params.get("debug"))
    configure_logging(debug)
    if debug:  # the local cluster's workers too
        dask.config.set({"cubehub.cluster.local.worker_logs": "info"})
