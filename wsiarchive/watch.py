"""A scanner's drop folder: each new slide, once completely written, is imported, then moved
to ``done/`` or to ``failed/`` with a ``.reason.txt`` beside it. With a job queue, a settled
slide moves to ``queued/`` (its job id in a ``.job`` file beside it) and is submitted; it moves
on to ``done/`` or ``failed/`` when its job ends, whichever worker converted it."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from converter import ConversionOptions, SlideInfo
from storage import Archive
from storage.access import local_admin
from storage.errors import ArchiveError
from storage.jobs import FINAL, JobQueue, JobState
from wsiarchive.importer import companion_of, import_paths
from wsiarchive.jobs.common import metadata_json

log = logging.getLogger(__name__)
DONE, FAILED, QUEUED = "done", "failed", "queued"
JOB_SUFFIX = ".job"  # beside a queued slide: its job's id


@dataclass
class DropFolder:
    """Polls *root*; a file is complete when its size and mtime stay the same for *settle*
    seconds (scanners write slides in place, often slowly)."""

    root: Path
    archive: Archive
    info: SlideInfo
    options: ConversionOptions
    settle: float = 10.0
    queue: JobQueue | None = None
    _seen: dict[Path, tuple[int, float, float]] = field(default_factory=dict)

    def candidates(self) -> list[Path]:
        found = []
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if relative.parts[0] in (DONE, FAILED, QUEUED) or not path.is_file():
                continue
            if path.name.startswith(".") or path.name.endswith(".reason.txt"):
                continue
            if path.suffix == ".json" and any(
                p.stem == path.stem and p.suffix != ".json" for p in path.parent.iterdir()
            ):
                continue  # a slide's metadata sidecar
            if companion_of(path):
                continue
            found.append(path)
        return found

    def ready(self, now: float) -> list[Path]:
        """Files whose size and modification time have not changed for *settle* seconds."""
        ready = []
        for path in self.candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime)
            previous = self._seen.get(path)
            if previous is None or previous[:2] != signature:
                self._seen[path] = (*signature, now)
            elif now - previous[2] >= self.settle:
                ready.append(path)
        return ready

    def process(self, path: Path) -> bool:
        """Import one settled file and move it (with companions and sidecar) away."""
        self._seen.pop(path, None)
        info = self.info
        sidecar = path.with_suffix(".json")
        try:
            if sidecar.exists():
                info = info.updated(**vars(SlideInfo.from_json(sidecar)))
        except Exception as exc:
            self._move(path, FAILED, f"{sidecar}: {exc}")
            return False
        if self.queue is not None:
            return self._submit(path, info)
        options = replace(self.options, warn=lambda text: log.warning("%s", text))
        outcome = import_paths(
            self.archive, [path], info, options, local_admin("watch"), report=log.info
        )
        if path in outcome.failed:
            self._move(path, FAILED, outcome.failed[path])
            return False
        self._move(path, DONE, None)
        return True

    def _submit(self, path: Path, info: SlideInfo) -> bool:
        """Move a settled slide to queued/ and submit its job there."""
        assert self.queue is not None
        target = self._move(path, QUEUED, None)
        try:
            job = self.queue.submit(
                str(target.resolve()), metadata_json(info), who=local_admin("watch")
            )
        except ArchiveError as exc:
            self._move(target, FAILED, exc.reason, self.root / QUEUED)
            return False
        (target.parent / f"{target.name}{JOB_SUFFIX}").write_text(job.job_id + "\n")
        log.info("%s queued as job %s", path.relative_to(self.root), job.job_id)
        return True

    def queued(self) -> list[Path]:
        """The job files of slides waiting in queued/ for their jobs to end."""
        return sorted((self.root / QUEUED).rglob(f"*{JOB_SUFFIX}"))

    def settle_jobs(self) -> None:
        """Move each queued slide whose job has ended to done/ or failed/ (with the reason)."""
        assert self.queue is not None
        base = self.root / QUEUED
        for marker in self.queued():
            slide = marker.with_name(marker.name[: -len(JOB_SUFFIX)])
            try:
                job = self.queue.job(marker.read_text().strip(), who=local_admin("watch"))
            except ArchiveError as exc:
                log.warning("%s: %s", marker, exc.reason)
                continue
            if job.state not in FINAL:
                continue
            marker.unlink()
            if job.state is JobState.DONE:
                self._move(slide, DONE, None, base)
            else:
                self._move(slide, FAILED, job.reason or "failed", base)

    def _move(self, path: Path, where: str, reason: str | None, base: Path | None = None) -> Path:
        relative = path.relative_to(base or self.root)
        target = self.root / where / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        companions = [path.with_suffix(".json")]
        companions += [path.parent / f"_{path.stem}_", path.parent / path.stem]
        for item in companions:
            if item.exists() and item != path and (item.suffix == ".json" or item.is_dir()):
                shutil.move(str(item), str(target.parent / item.name))
        shutil.move(str(path), str(target))
        if reason is not None:
            (target.parent / f"{target.name}.reason.txt").write_text(reason + "\n")
            log.warning("%s failed: %s", relative, reason)
        elif where != QUEUED:
            log.info("%s imported", relative)
        return target

    def run(self, interval: float = 2.0, once: bool = False) -> None:
        """Watch until interrupted (or, with *once*, until nothing is left to do)."""
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            for path in self.ready(time.monotonic()):
                self.process(path)
            if self.queue is not None:
                self.settle_jobs()
            if once and not self.candidates() and not (self.queue and self.queued()):
                return
            time.sleep(interval)
