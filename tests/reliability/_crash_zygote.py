"""A fork server for the crash-injection test: a clean, single-threaded interpreter that
forks save-loop children on request, so each of hundreds of kills costs a fork, not a start-up.

stdin ``run``  -> forks a child saving in a loop; prints its pid, then ``reaped`` once it died.
stdin ``quit`` -> exits.

The child increments ``counter-N`` in the project name, saves, then writes N (fixed width)
to the ack file and fsyncs it: an acknowledged N is a save that returned before the kill.
"""

from __future__ import annotations

import os
import sys

from cde_otel.core import FileSystemProjectRepository


def save_forever(project_dir: str, ack_file: str) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_by_path(project_dir)
    assert project is not None
    fd = os.open(ack_file, os.O_WRONLY)
    while True:
        counter = int(project.name.removeprefix("counter-")) + 1
        project.name = f"counter-{counter}"
        repo.save(project)
        os.pwrite(fd, f"{counter:012d}".encode(), 0)
        os.fsync(fd)


def main() -> None:
    project_dir, ack_file = sys.argv[1], sys.argv[2]
    for line in sys.stdin:
        if line.strip() != "run":
            break
        pid = os.fork()
        if pid == 0:
            try:
                save_forever(project_dir, ack_file)
            finally:
                os._exit(3)  # only reached if a save failed: the parent sees a non-SIGKILL status
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"reaped {status}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
