"""Start `flask --app backend index` processes in milliseconds, for the kill -9 fault test.

Importing torch takes seconds; this process pays that once, then forks a child per command.
Each child runs exactly what the `flask` console script runs (`flask.cli.main`) with the
arguments given, its stdout and stderr going to a log file. Nothing here runs a torch operation
before forking, so the children start with no thread pool to inherit.

Protocol, one line per request on stdin, one answer line on stdout:
    run LOG ARG...   -> the child's pid
    wait PID         -> its exit status (negative: killed by that signal)
"""

from __future__ import annotations

import os
import sys

import flask.cli
import torch  # noqa: F401 - imported once here so that children need not
import torchvision  # noqa: F401

import backend.cli  # noqa: F401
import backend.index.indexer  # noqa: F401


def run_child(log_path: str, args: list[str]) -> None:
    """In the forked child: become `flask ARGS` with output to LOG; never return."""
    code = 1
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["flask", *args]
        try:
            flask.cli.main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "run":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                run_child(rest[0], rest[1:])
            answer = pid
        elif command == "wait":
            _, status = os.waitpid(int(rest[0]), 0)
            answer = os.waitstatus_to_exitcode(status)
        else:
            answer = f"unknown command {command!r}"
        print(answer, flush=True)


if __name__ == "__main__":
    serve()
