"""SIGKILL at chosen points of the real febm code path, for the fault-matrix tests (tests/test_faults_*.py).

A *fault* is a dict (JSON-able, so it can travel in an environment variable):

* ``{"kind": "kill_at_step", "step": N}``: SIGKILL right after training step N (before its checkpoint);
* ``{"kind": "pause_at_step", "step": N, "marker": PATH}``: after step N write PATH (holding the pid)
  and sleep, so that a test can kill the process (or its Snakemake controller) from outside;
* ``{"kind": "kill_mid_write", "nth": K}``: the K-th checkpoint write of this process puts half of the
  bytes into its temporary file, then SIGKILL (a crash while the checkpoint is being written);
* ``{"kind": "kill_before_rename", "nth": K}``: SIGKILL after the K-th checkpoint's temporary file is
  complete and fsynced, before the rename that publishes it;
* ``{"kind": "kill_after_rename", "nth": K}``: SIGKILL right after that rename (before anything else,
  e.g. before older image checkpoints are pruned);
* ``{"kind": "pause_after_write", "name": NAME, "marker": PATH}``: pause (as above) right after a file
  called NAME is renamed into place, e.g. once a job's last output exists.

Optional keys: ``events`` (a JSON-lines file: where each process records the step it started from and
the step it was killed at, for the work-lost measurement), ``once`` (a marker file: the fault fires only
if it does not exist yet, so a retried job runs clean), ``argv_contains`` (fire only in a process whose
command line contains this string).

Nothing here changes what febm computes: the wrappers call the original functions, and only add the
kill. Three ways in:

* ``install(fault)`` in a process that then runs ``febm.cli.main``;
* ``python -m tests.fault_injection serve``: a zygote that imports torch and febm once and forks one
  child per run (JSON lines on stdin/stdout), so a chain of killed runs pays the ~3 s import once.
  The zygote itself never runs torch code (no OpenMP pool exists yet), so forking it is safe;
* a ``sitecustomize.py`` (written by the Snakemake tests) calls ``install_from_environment()`` in every
  ``febm`` process that Snakemake starts, with the fault as JSON in ``FEBM_FAULT``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar

CHECKPOINT_NAME = re.compile(r"^state_\d{8}_rank\d+\.pt$")  # febm.checkpoints.state_path
STEP_FAULTS = {"kill_at_step", "pause_at_step"}
WRITE_FAULTS = {"kill_mid_write", "kill_before_rename", "kill_after_rename", "pause_after_write"}


class _State:
    fault: ClassVar[dict[str, Any]] = {}
    last_step: int | None = None
    started = False
    writes = 0  # checkpoint writes seen by the armed write fault


def _record(event: str, **fields: Any) -> None:
    path = _State.fault.get("events")
    if not path:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "argv": sys.argv[1:3], **fields})
    with open(path, "a") as handle:
        handle.write(line + "\n")
        handle.flush()


def _armed() -> bool:
    once = _State.fault.get("once")
    if once and Path(once).exists():
        return False
    wanted = _State.fault.get("argv_contains")
    return not wanted or wanted in " ".join(sys.argv)


def _fire(point: str) -> None:
    once = _State.fault.get("once")
    if once:
        Path(once).write_text(str(os.getpid()))
    _record("kill", step=_State.last_step, point=point)
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: SIGKILL cannot be caught


def _after_step(step_before: int, step_after: int) -> None:
    if not _State.started:
        _State.started = True
        _record("start", step=step_before)
    _State.last_step = step_after
    fault = _State.fault
    if fault.get("kind") not in STEP_FAULTS or step_after != fault["step"] or not _armed():
        return
    if fault["kind"] == "kill_at_step":
        _fire(f"after step {step_after}")
    _pause(f"after step {step_after}")


def _pause(point: str) -> None:
    """Announce this pid in the fault's marker file and wait to be killed from outside."""
    fault = _State.fault
    _record("pause", step=_State.last_step, point=point)
    if fault.get("once"):
        Path(fault["once"]).write_text(str(os.getpid()))
    marker = Path(fault["marker"])
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(str(os.getpid()))
    os.rename(partial, marker)  # the watcher never reads a half-written pid
    time.sleep(600)


def _is_checkpoint(path: str | os.PathLike) -> bool:
    return bool(CHECKPOINT_NAME.match(Path(path).name))


def _wrap_steps() -> None:
    from febm.images.training import ImageTrainer
    from febm.toy.train import ToyTrainer

    toy_step = ToyTrainer.train_step
    image_step = ImageTrainer.step

    def toy_train_step(self):
        before = self.step
        result = toy_step(self)
        _after_step(before, self.step)
        return result

    def image_train_step(self):
        before = self.iteration
        result = image_step(self)
        _after_step(before, self.iteration)
        return result

    ToyTrainer.train_step = toy_train_step
    ImageTrainer.step = image_train_step


def _wrap_writes() -> None:
    import febm.io

    kind = _State.fault.get("kind")
    original_write = febm.io.write_bytes_atomic
    original_replace = os.replace

    def write_bytes_atomic(path, data):
        if kind == "kill_mid_write" and _is_checkpoint(path):
            _State.writes += 1
            if _State.writes == _State.fault["nth"] and _armed():
                with febm.io.atomic_path(path) as tmp:
                    tmp.write_bytes(data[: len(data) // 2])
                    _fire(f"mid-write of {Path(path).name}")
        return original_write(path, data)

    def replace(src, dst, *args, **kwargs):
        publishing = kind != "kill_mid_write" and _is_checkpoint(dst) and str(src).endswith(".tmp")
        if publishing:
            _State.writes += 1
        firing = publishing and _State.writes == _State.fault.get("nth") and _armed()
        if firing and kind == "kill_before_rename":
            _fire(f"before rename of {Path(dst).name}")
        result = original_replace(src, dst, *args, **kwargs)
        if firing and kind == "kill_after_rename":
            _fire(f"after rename of {Path(dst).name}")
        if kind == "pause_after_write" and Path(dst).name == _State.fault["name"] and _armed():
            _pause(f"after writing {Path(dst).name}")
        return result

    febm.io.write_bytes_atomic = write_bytes_atomic
    os.replace = replace


def install(fault: dict[str, Any] | None) -> None:
    """Arm ``fault`` in this process (None: only record where training started)."""
    _State.fault = dict(fault or {})
    _wrap_steps()
    if _State.fault.get("kind") in WRITE_FAULTS:
        _wrap_writes()


def install_from_environment() -> None:
    spec = os.environ.get("FEBM_FAULT")
    if spec:
        install(json.loads(spec))


# --- the zygote -------------------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(request["cwd"])
    sys.argv = ["febm", *request["argv"]]
    status = 1
    try:
        from febm.cli import main

        install(request.get("fault"))
        status = main(request["argv"])
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def serve() -> None:
    """Read one JSON request per line; fork a child for it; answer {"status": exit code or -signal}."""
    # The expensive imports, paid once for every child.
    import febm.cli
    import febm.images.run
    import febm.toy.runs

    del febm

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"status": code}), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
