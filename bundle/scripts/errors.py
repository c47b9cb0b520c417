# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""User errors end a bundle run with one line and a non-zero exit, not a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from nibabel.filebasedimages import ImageFileError

__all__ = ["USER_ERRORS", "user_error", "exit_on_user_error", "one_line_errors"]

# What bad input raises (wrong prompts or shapes, missing or unreadable files, an existing output, no weights).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImageFileError)

logger = logging.getLogger(__name__)


def user_error(error: BaseException) -> BaseException | None:
    """The innermost user error in an exception's cause chain (MONAI and ignite wrap errors in RuntimeErrors)."""
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, USER_ERRORS):
            found = error
        error = error.__cause__ or error.__context__
    return found


def exit_on_user_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a user error becomes ``SystemExit("error: <message>")`` (exit status 1), others propagate.

    Args:
        fn: what to run, e.g. ``evaluator.run``.
        args: positional arguments of ``fn``.
        kwargs: keyword arguments of ``fn``.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        cause = user_error(e)
        if cause is None:
            raise
        logger.debug("user error", exc_info=True)
        raise SystemExit(f"error: {cause}") from None


def _one_line_hook(kind: type[BaseException], error: BaseException, traceback) -> None:
    cause = user_error(error)
    if cause is None:
        sys.__excepthook__(kind, error, traceback)
        return
    logger.debug("user error", exc_info=(kind, error, traceback))
    print(f"error: {cause}", file=sys.stderr, flush=True)


class _ReportedOnce(logging.Filter):
    """Drop the engines' own reports of the exception that ends a run: the process reports it once when it ends.

    Ignite logs ``Current run is terminating due to exception: ...`` and ``Engine run is terminating due to
    exception: ...`` and MONAI's ``StatsHandler`` logs the traceback; the hook then prints the same error again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and user_error(record.exc_info[1]) is not None:
            return False
        return "is terminating due to exception" not in record.getMessage()


def one_line_errors() -> None:
    """From now on, a user error that ends the process prints one ``error: <message>`` line (exit status 1).

    Configs call it first in ``initialize``, so that a bad request, file or checkpoint ends any bundle run
    (``monai.bundle run``, ``torchrun``) with one line wherever it is raised, printed once, while other errors keep
    their traceback (from the hook: the engines' own reports of it are dropped from the log).
    """
    sys.excepthook = _one_line_hook
    loggers = [logging.getLogger()] + [
        v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)
    ]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if not any(isinstance(f, _ReportedOnce) for f in handler.filters):
            handler.addFilter(_ReportedOnce())
