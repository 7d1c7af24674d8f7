"""A real full filesystem (a 512 KiB tmpfs mounted as root) drives read-only mode and its automatic exit.

If the sandbox forbids the mount, the same scenario runs on fault injection (every write
fails with ENOSPC) and the test says so: a ``filesystem`` user property and a warning.
"""

from __future__ import annotations

import errno
import os
import subprocess
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cde_otel.core import FileSystemProjectRepository
from cde_otel.core.state import state_paths
from cde_otel.errors import ReadOnlyModeError
from cde_otel.testing import ManualClock, simulate_disk_full

pytestmark = pytest.mark.reliability


@dataclass
class TinyDisk:
    root: Path
    mode: str  # "tmpfs" or "fault-injection"
    fillers: list[Path] = field(default_factory=list)
    _injected: AbstractContextManager[object] = field(default_factory=nullcontext)

    def fill(self) -> None:
        if self.mode != "tmpfs":
            self._injected = simulate_disk_full()
            self._injected.__enter__()
            return
        filler = self.root / f"filler-{len(self.fillers)}"
        self.fillers.append(filler)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            chunk = b"\xff" * 4096
            while True:
                os.write(fd, chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        if self.mode != "tmpfs":
            self._injected.__exit__(None, None, None)
            return
        for filler in self.fillers:
            filler.unlink()
        self.fillers.clear()


@contextmanager
def tiny_disk(tmp_path: Path) -> Iterator[TinyDisk]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        check=False,
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        warnings.warn(
            f"mount forbidden ({mounted.stderr.strip()}); full-filesystem test ran on ENOSPC fault injection",
            stacklevel=2,
        )
        yield TinyDisk(mount_point, "fault-injection")
        return
    try:
        yield TinyDisk(mount_point, "tmpfs")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_filesystem_read_only_and_automatic_exit(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with tiny_disk(tmp_path) as disk:
        record_property("filesystem", disk.mode)
        clock = ManualClock()
        repo = FileSystemProjectRepository(readonly_probe_s=5.0, clock=clock)
        project = repo.get_or_create(disk.root, name="tiny")
        project.activate()
        feature = project.start_feature("survives the full disk")
        repo.save(project)
        good_state = state_paths(disk.root)[1].read_bytes()

        disk.fill()
        project.start_feature("does not fit")
        with pytest.raises(ReadOnlyModeError) as caught:
            repo.save(project)
        assert caught.value.code == "E207"
        assert caught.value.__cause__ is not None
        assert caught.value.__cause__.context["errno"] == "ENOSPC"  # type: ignore[attr-defined]
        assert project.read_only is True
        assert list(project.features) == [feature.id]  # rolled back
        assert state_paths(disk.root)[1].read_bytes() == good_state
        with pytest.raises(ReadOnlyModeError):
            feature.advance_phase("decompose")
        # queries still work, for this and any other reader; a new reader also sees read-only
        assert project.get_feature(feature.id).current_phase == "define"
        other = FileSystemProjectRepository().get_or_create(disk.root)
        assert other.read_only is True
        assert other == project

        clock.now += 5
        assert repo.ensure_writable(project) is False  # probe due, disk still full

        disk.free()
        assert repo.ensure_writable(project) is False  # probes are rate-limited: none due yet
        clock.now += 5
        repo.save(project)  # the save's own probe ends read-only mode
        assert project.read_only is False
        assert repo.read_only_projects == {}
        project.start_feature("fits again")
        repo.save(project)
        reloaded = FileSystemProjectRepository().get_by_path(disk.root)
        assert reloaded is not None
        assert sorted(f.prompt for f in reloaded.features.values()) == ["fits again", "survives the full disk"]
