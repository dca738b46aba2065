"""What the benchmarks share about the processes they start: none outlives the benchmark."""

from __future__ import annotations

import ctypes
import signal
import subprocess

_PRCTL = ctypes.CDLL(None).prctl
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn for a child: SIGTERM when the benchmark dies, even by SIGKILL."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM (a clean stop commits what is queued), SIGKILL after `timeout`; the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
