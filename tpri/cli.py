"""What every tpri command line shares: argument errors are one line (no usage block), exit 2;
a reader that leaves the pipe (`| head`) ends the command quietly."""

from __future__ import annotations

import argparse
import os
import sys


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `PROG: error: MESSAGE`, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def stop_writing_stdout() -> int:
    """After the reader of stdout closed the pipe (BrokenPipeError): point stdout at /dev/null, so
    that the exit's flush raises nothing, and return 141, the status of a writer ended by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
