"""Real full filesystems drive read-only mode and its automatic exit, once per system call that can hit ENOSPC.

Every ENOSPC here comes from the kernel, never from a patched function:

* ``write`` — a tmpfs whose bytes are used up;
* ``open`` and ``mkdir`` — a tmpfs whose inodes are used up (``nr_inodes``);
* ``fsync`` — an ext4 image on a loop device whose backing tmpfs is full: the write lands in the page
  cache and the writeback behind ``fsync`` is refused (thin, overcommitted storage);
* ``rename`` — an ext4 whose state directory has room for the temp file's entry but not for a new
  ``state.json`` entry, and no free block to grow it.

The system calls are observed (never altered) so each case proves which call failed first.
Mounting needs root (CAP_SYS_ADMIN), loop devices and ``mkfs.ext4``: without them the test fails,
it never falls back to something weaker.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cde_otel.core import FileSystemProjectRepository, Project
from cde_otel.core.state import encode, state_paths
from cde_otel.errors import ReadOnlyModeError
from cde_otel.testing import ManualClock

pytestmark = pytest.mark.reliability

OBSERVED_CALLS = ("open", "write", "fsync", "replace", "mkdir")
BLOCK = 1024  # the ext4 block size used below: small, so a few blocks decide the outcome


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n"
            "The full-filesystem tests need root (CAP_SYS_ADMIN), loop devices and mkfs.ext4 (e2fsprogs)."
        )


@contextlib.contextmanager
def _mounted(*args: str, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    _run("mount", *args, str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=60)


def _fill_with_files(directory: Path, prefix: str, name_length: int = 12) -> list[Path]:
    """Empty files until the kernel refuses one with ENOSPC (no inode or no directory room left)."""
    made: list[Path] = []
    while True:
        path = directory / f"{prefix}{len(made):0{name_length - len(prefix)}d}"
        try:
            path.touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return made
        made.append(path)


def _fill_with_bytes(path: Path) -> int:
    """Appends to ``path`` until ENOSPC; the number of bytes written (made durable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    written = 0
    try:
        while True:
            try:
                written += os.write(fd, b"\xff" * BLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


@dataclass
class FullDisk:
    """A project directory on a small real filesystem; ``fill()`` makes the next save hit ENOSPC at ``call``."""

    call: str
    project_dir: Path
    fill: Callable[[], None]
    free: Callable[[], None]
    new_project: bool  # the failing save is the project's first one (nothing on disk yet)


@dataclass
class SyscallSpy:
    """Records which observed ``os`` call raised ENOSPC first (the calls themselves are untouched)."""

    failed: list[str] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in OBSERVED_CALLS:
            monkeypatch.setattr(os, name, self._observing(name, getattr(os, name)))

    def _observing(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def observed(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    self.failed.append(name)
                raise

        return observed


@contextlib.contextmanager
def _tmpfs_out_of_bytes(base: Path) -> Iterator[FullDisk]:
    with _mounted("-t", "tmpfs", "-o", "size=512k", "tmpfs", target=base / "tmpfs") as root:
        filler = root / "filler"

        def fill() -> None:
            _fill_with_bytes(filler)

        yield FullDisk("write", root / "project", fill, filler.unlink, new_project=False)


@contextlib.contextmanager
def _tmpfs_out_of_inodes(base: Path, call: str) -> Iterator[FullDisk]:
    with _mounted("-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs", target=base / "tmpfs") as root:
        (root / "fillers").mkdir()
        fillers: list[Path] = []

        def fill() -> None:
            fillers.extend(_fill_with_files(root / "fillers", "inode"))

        def free() -> None:
            for path in fillers:
                path.unlink()
            fillers.clear()

        yield FullDisk(call, root / "project", fill, free, new_project=call == "mkdir")


@contextlib.contextmanager
def _ext4(base: Path, block: int = BLOCK) -> Iterator[tuple[Path, Path]]:
    """An ext4 image on a loop device, its backing file alone on a tmpfs: (ext4 mount, backing tmpfs)."""
    if shutil.which("mkfs.ext4") is None:
        pytest.fail("mkfs.ext4 (e2fsprogs) is required by the full-filesystem tests")
    with _mounted("-t", "tmpfs", "-o", "size=8m", "tmpfs", target=base / "backing") as backing:
        image = backing / "ext4.img"
        _run("truncate", "-s", "4M", str(image))
        # No journal and no lazy init: nothing writes to the image behind the test's back; linear
        # directories without checksums keep the directory-room arithmetic below simple.
        _run("mkfs.ext4", "-q", "-F", "-b", str(block), "-m", "0", "-O", "^has_journal,^dir_index,^metadata_csum",
             "-E", "lazy_itable_init=0", str(image))  # fmt: skip
        with _mounted("-o", "loop,errors=continue", str(image), target=base / "ext4") as root:
            device = subprocess.run(["findmnt", "-no", "SOURCE", str(root)], capture_output=True, text=True, check=True)
            reserved = Path("/sys/fs/ext4") / Path(device.stdout.strip()).name / "reserved_clusters"
            reserved.write_text("0")  # ext4 keeps a few blocks back for itself: let the test use every one
            yield root, backing


@contextlib.contextmanager
def _ext4_writeback_refused(base: Path) -> Iterator[FullDisk]:
    # Blocks as large as the backing tmpfs's pages, so a trimmed block is a page handed back.
    with _ext4(base, block=os.sysconf("SC_PAGE_SIZE")) as (root, backing):
        filler = backing / "filler"

        def fill() -> None:
            # Blocks ext4 freed earlier may still hold backing bytes: hand them back, then use up the backing.
            _run("fstrim", str(root))
            _fill_with_bytes(filler)

        yield FullDisk("fsync", root / "project", fill, filler.unlink, new_project=False)


@contextlib.contextmanager
def _ext4_no_room_for_the_name(base: Path) -> Iterator[FullDisk]:
    with _ext4(base) as (root, _):
        project_dir = root / "project"
        state_dir = state_paths(project_dir)[0]
        state_dir.mkdir(parents=True)
        (state_dir / "state.lock").touch()  # the lock file is not what this case is about
        filler = root / "filler"
        temp_name = f".state.json.{os.getpid()}.00000000.tmp"

        def fill() -> None:
            _fill_with_bytes(filler)
            # Directory entries as long as the temp file's until none fits, then short ones until none
            # fits: the directory's free room is now below one short entry ("state.json" is short).
            long_ones = _fill_with_files(state_dir, "t", len(temp_name))
            _fill_with_files(state_dir, "s", 12)
            long_ones[0].unlink()  # exactly one temp-file-sized hole
            # Free the blocks the state's bytes need, and not one more (a spare one would grow the directory).
            data_blocks = math.ceil(len(encode(Project(name="room", path=str(project_dir)), 1)) / BLOCK)
            with filler.open("r+b") as handle:
                handle.truncate(filler.stat().st_size - (data_blocks + 1) * BLOCK)
                os.fsync(handle.fileno())

        def free() -> None:
            filler.unlink()
            for leftover in state_dir.iterdir():
                if leftover.name[0] in "ts":
                    leftover.unlink()

        yield FullDisk("replace", project_dir, fill, free, new_project=True)


@contextlib.contextmanager
def full_disk(call: str, base: Path) -> Iterator[FullDisk]:
    cases = {
        "write": lambda: _tmpfs_out_of_bytes(base),
        "open": lambda: _tmpfs_out_of_inodes(base, "open"),
        "mkdir": lambda: _tmpfs_out_of_inodes(base, "mkdir"),
        "fsync": lambda: _ext4_writeback_refused(base),
        "replace": lambda: _ext4_no_room_for_the_name(base),
    }
    with cases[call]() as disk:
        disk.project_dir.mkdir(exist_ok=True)
        yield disk


@pytest.mark.parametrize("call", ["open", "write", "fsync", "replace", "mkdir"])
def test_enospc_makes_the_project_read_only_until_space_returns(
    call: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SyscallSpy()
    with full_disk(call, tmp_path) as disk:
        clock = ManualClock()
        repo = FileSystemProjectRepository(readonly_probe_s=5.0, clock=clock)
        state_file = state_paths(disk.project_dir)[1]
        if disk.new_project:
            project = Project(name="tiny", path=str(disk.project_dir))
            project.activate()
            good_state = None
        else:
            project = repo.get_or_create(disk.project_dir, name="tiny")
            project.activate()
            repo.save(project)
            good_state = state_file.read_bytes()
        feature = project.start_feature("survives the full disk")
        if not disk.new_project:
            repo.save(project)
            good_state = state_file.read_bytes()

        disk.fill()
        spy.install(monkeypatch)
        project.start_feature("does not fit")
        with pytest.raises(ReadOnlyModeError) as caught:
            repo.save(project)
        assert spy.failed[:1] == [disk.call], spy.failed  # the kernel refused exactly this call first
        monkeypatch.undo()
        assert caught.value.code == "E207"
        assert caught.value.__cause__ is not None
        assert caught.value.__cause__.context["errno"] == "ENOSPC"  # type: ignore[attr-defined]
        assert project.read_only is True
        with pytest.raises(ReadOnlyModeError):
            feature.advance_phase("decompose")
        assert project.get_feature(feature.id).current_phase == "define"  # queries still work
        if good_state is None:
            assert not state_file.exists()
        else:
            assert list(project.features) == [feature.id]  # rolled back to what is on disk
            assert state_file.read_bytes() == good_state
            other = FileSystemProjectRepository().get_or_create(disk.project_dir)
            assert other.read_only is True  # a new reader also sees read-only
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
        reloaded = FileSystemProjectRepository().get_by_path(disk.project_dir)
        assert reloaded is not None
        expected = {"fits again", "survives the full disk"} | ({"does not fit"} if good_state is None else set())
        assert {f.prompt for f in reloaded.features.values()} == expected
