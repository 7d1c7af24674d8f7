"""What every error code means to a user: title, description, causes and fixes.

One :class:`CatalogEntry` per code of :data:`~cde_otel._exceptions.ERROR_CODES`;
severity, name and recoverability are read from that registry, never repeated.
Description and suggestion texts are :meth:`str.format` templates whose
``{placeholders}`` are keys of the error's ``context`` (plus ``{message}``, the
error's own message, and ``{code}``); write a literal brace as ``{{`` / ``}}``; ``{path!q}``
shell-quotes a value inside a command.
Texts are plain ASCII so the ASCII rendering stays ASCII.

    >>> entry = catalog_entry("E101")
    >>> entry.title, entry.severity.value, entry.docs_link()
    ('Feature Creation Failed', 'ERROR', 'docs/errors/catalog.md#e101')

A registered code without a row here still gets a minimal entry built from its
registry summary (so formatting never fails), but the test suite requires a row
for every code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cde_otel._exceptions import ERROR_CODES, ErrorCode, Severity
from cde_otel.core import MAX_NAME_LENGTH, MAX_PROMPT_LENGTH, PHASES

#: Where the generated catalog lives, relative to the repository root; doc links point at its anchors.
DOCS_PATH = "docs/errors/catalog.md"

_RESTORE = "Restore a good backup: cde-otel state restore PROJECT_DIR BACKUP"
_LIST_BACKUPS = "List the project's backups, newest first: cde-otel state backups PROJECT_DIR"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The user-facing explanation of one error code."""

    code: str
    title: str
    description: str
    suggestions: tuple[str, ...]
    causes: tuple[str, ...]

    @property
    def spec(self) -> ErrorCode:
        return ERROR_CODES[self.code]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def severity(self) -> Severity:
        return self.spec.severity

    @property
    def recoverable(self) -> bool:
        return self.spec.recoverable

    @property
    def anchor(self) -> str:
        return self.code.lower()

    def docs_link(self, docs_url: str | None = None) -> str:
        """Link to this code's section: relative to the repo by default, or under ``docs_url``.

        ``docs_url`` is the URL of the catalog page itself, e.g.
        ``https://example.org/cde-otel/errors/catalog.html``; the anchor is appended.
        """
        base = docs_url.rstrip("#") if docs_url else DOCS_PATH
        return f"{base}#{self.anchor}"


def _entry(code: str, title: str, description: str, *, fixes: tuple[str, ...], causes: tuple[str, ...]) -> CatalogEntry:
    return CatalogEntry(code, title, description, fixes, causes)


_PHASE_ORDER = " -> ".join(PHASES)

_ENTRIES: tuple[CatalogEntry, ...] = (
    # -- project (E0xx) -------------------------------------------------------------
    _entry("E001", "Project Not Found",
           "The project path '{path}' does not exist or is not a directory.",
           fixes=("Check the path is correct: ls -ld {path!q}",
                  "Create the project directory first (cde-otel never creates it): mkdir -p {path!q}",
                  "Pass an absolute path to repo.get_or_create(path); relative paths follow the working directory"),
           causes=("A typo in the path, or an empty path.",
                   "The directory was moved or deleted.",
                   "A relative path resolved against a different working directory.",
                   "The path names a file, not a directory.")),
    _entry("E002", "Project Path Not Accessible",
           "The project path '{path}' exists but this process cannot read it.",
           fixes=("Check the owner and mode: ls -ld {path!q}",
                  "Give the user running cde-otel read, write and execute rights: chmod u+rwx {path!q}",
                  "If the path is on a network or removable drive, check that it is mounted"),
           causes=("Missing read or execute permission on the directory or a parent.",
                   "An unmounted or stale network filesystem.")),
    _entry("E003", "Invalid Project Status Transition",
           "Project {project_id} cannot move from {status} to {target}; from {status} it can move to: {allowed}.",
           fixes=("Check the current status first: project.status",
                  "Follow the lifecycle onboarding -> active <-> archived: project.activate() or project.archive()",
                  "A project in 'error' status is terminal: start over with repo.get_or_create(new_path)"),
           causes=("Calling activate() on an already active project, or archive() before activating it.",
                   "Trying to leave the terminal 'error' status.")),
    _entry("E004", "Project Path Outside Roots",
           "The project path {path} resolves to '{resolved}', outside the directories this server may use "
           "({roots}); nothing was read or created.",
           fixes=("Use a project inside the served directory, or omit project_path to use the default project",
                  "Start the server for that project: cde-otel mcp --project PROJECT_DIR",
                  "Or allow another directory explicitly: cde-otel mcp --project PROJECT_DIR --allow-root OTHER_DIR"),
           causes=("An absolute path to another directory.",
                   "A relative path with '..' that climbs out of the project.",
                   "A symbolic link inside the project that points outside it.")),
    _entry("E005", "Input Too Long",
           "The {field} is {length} characters; at most {max_length} are allowed. It was refused before being "
           "read further (it starts {value}).",
           fixes=("Pass the id exactly as a tool answered it (feature ids are 32 characters)",
                  "Pass a phase name: one of " + ", ".join(PHASES),
                  "Keep paths under 4096 characters"),
           causes=("A client that put content (a prompt, a file) where an id, a phase or a path belongs.",
                   "A buggy or hostile client.")),
    _entry("E006", "Input Malformed",
           "The {field} contains a character it never has (a NUL byte, a line break or a control character): "
           "{value}.",
           fixes=("Pass the id or the path exactly as given, without surrounding text or line breaks",),
           causes=("Text copied with a trailing newline or escape sequence.", "A buggy or hostile client.")),
    # -- feature (E1xx) -------------------------------------------------------------
    _entry("E101", "Feature Creation Failed",
           "Cannot start a feature while project {project_id} is {status}. The project must be ACTIVE.",
           fixes=("Activate the project: project.activate()",
                  "Check the project status first: project.status",
                  "An archived project can be activated again; a project in 'error' status cannot - "
                  "create a new project with repo.get_or_create(path)"),
           causes=("The project is still onboarding: new projects start in ONBOARDING and must be activated.",
                   "The project was archived.",
                   "The project is in the terminal ERROR status.")),
    _entry("E102", "Invalid Phase Transition",
           "Feature {feature_id} is in phase '{current_phase}' and cannot go to '{requested_phase}'; "
           "the next step is '{expected_phase}'.",
           fixes=("Move one phase forward: feature.advance_phase(next_phase, results)",
                  f"Phases run in order, one at a time: {_PHASE_ORDER}; after review call feature.complete()",
                  "Check where the feature is: feature.current_phase"),
           causes=("Skipping a phase, or going back to an earlier one.",
                   "Two callers advancing the same feature from stale copies.")),
    _entry("E103", "Feature Already Finished",
           "Feature {feature_id} is {status}; {operation} was refused because a finished feature "
           "accepts no more changes.",
           fixes=("Start a new feature for further work: project.start_feature(prompt)",
                  "List the features still in progress: project.get_active_features()"),
           causes=("The feature was completed or failed earlier, possibly by another process.",)),
    _entry("E104", "Feature Not Found",
           "Project {project_id} has no feature with id '{feature_id}'.",
           fixes=("List the project's feature ids: list(project.features)",
                  "Reload the project in case another process started the feature: repo.get_by_path(path)",
                  "Check the id for typos; ids are 32 hexadecimal characters"),
           causes=("A wrong or truncated feature id.",
                   "The feature belongs to another project.",
                   "The project object was loaded before the feature was created elsewhere.")),
    _entry("E105", "Feature Not In Review",
           "Feature {feature_id} is in phase '{current_phase}'; it can only be completed from 'review'.",
           fixes=("Advance through the remaining phases with feature.advance_phase(next_phase, results), "
                  "then call feature.complete()",
                  "To stop the feature early, mark it failed instead: feature.fail(reason)"),
           causes=("Calling complete() before the feature reached the review phase.",)),
    _entry("E106", "Feature Detached By A Rollback",
           "Feature {feature_id} is no longer part of project {project_id}: a failed save put the project back to "
           "its last saved version, which does not have this feature, so {operation} was refused.",
           fixes=("Reload the project and start the feature again: project = repo.get_by_path(path); "
                  "project.start_feature(prompt)",
                  "Fix what made the save fail first (see the save's own error: E201, E207, E210...)",
                  "Save right after start_feature so a later failure cannot roll the feature back"),
           causes=("The feature was started after the last successful save, and the next save failed and "
                   "was rolled back.",)),
    # -- state (E2xx) ---------------------------------------------------------------
    _entry("E201", "State Write Failed",
           "Could not {operation} '{path}': {reason} ({errno}).",
           fixes=("Check free space and permissions where the state lives: df -h {path!q}",
                  "Retry the operation; transient failures are retried up to CDE_OTEL_RETRY_ATTEMPTS times "
                  "(raise it, or CDE_OTEL_RETRY_MAX_WAIT_S, for flaky storage)",
                  _LIST_BACKUPS),
           causes=("An I/O error from the disk or a network filesystem.",
                   "A file in .cde/ replaced by a directory or a broken link.")),
    _entry("E202", "State Conflict",
           "The state at '{path}' is at revision {found_revision}, but this project was loaded at revision "
           "{expected_revision}: another process saved it in between.",
           fixes=("Reload the project and apply your change again: project = repo.get_by_path(path)",
                  "Or overwrite deliberately, discarding the other change: repo.save(project, force=True)",
                  "Avoid long-lived copies: load, change and save in one short step"),
           causes=("Two processes (or two objects in one process) changed the same project.",
                   "A backup was restored while this copy was loaded.")),
    _entry("E203", "State File Corrupt",
           "The state file '{path}' cannot be used: {reason}.",
           fixes=(_LIST_BACKUPS, _RESTORE,
                  "Copy the damaged file aside first if you want to inspect it: cp {path!q} {path!q}.damaged"),
           causes=("The file was edited by hand or written by another tool.",
                   "Disk or filesystem damage.",
                   "A checksum mismatch: the content changed after cde-otel wrote it.")),
    _entry("E204", "State File Invalid",
           "The state file parses but does not match the expected schema: {message}.",
           fixes=(_LIST_BACKUPS, _RESTORE,
                  "Do not edit .cde/state.json by hand; change projects through the API"),
           causes=("A field is missing or has the wrong type, usually after a manual edit.",
                   "The file was written by an incompatible tool.")),
    _entry("E205", "Unsupported State Schema",
           "The state file '{path}' has schema version {schema_version}, but this cde-otel reads up to "
           "version {supported}.",
           fixes=("Upgrade cde-otel to the version that wrote the file: pip install --upgrade cde-otel",
                  "Or go back to a state this version wrote: cde-otel state restore PROJECT_DIR BACKUP"),
           causes=("A newer cde-otel wrote the state and an older one is reading it.",)),
    _entry("E206", "State Lock Timeout",
           "Waited {timeout_s} seconds for the state lock '{path}', which another process holds.",
           fixes=("Retry: the operation is safe to repeat",
                  "Look for another process working on the same project: ps aux | grep -i cde",
                  "Wait longer for the lock: CDE_OTEL_STATE_LOCK_TIMEOUT_S=30"),
           causes=("Another process is saving the same project, or is stuck while holding the lock.",
                   "Very slow storage (for example a loaded network filesystem).")),
    _entry("E207", "Read-Only Mode",
           "Project {project_id} is read-only because {reason}; {operation} was refused. Queries still work.",
           fixes=("Fix the storage problem at {path}: free disk space (df -h {path!q}), remount read-write, "
                  "or fix permissions (ls -ld {path!q})",
                  "Read-only mode ends by itself once a probe write succeeds "
                  "(at most every CDE_OTEL_READONLY_PROBE_S seconds); then retry",
                  "Keep reading meanwhile: project.get_feature(id) and project.get_active_features() still work"),
           causes=("The disk is full.",
                   "The filesystem was remounted read-only.",
                   "Write permission on the project's .cde directory was removed.")),
    _entry("E208", "State Recovered From Backup",
           "The state file '{path}' was bad ({cause_code}) and was restored from the backup '{backup}' "
           "(revision {backup_revision}).",
           fixes=("Check the recovered project: changes saved after revision {backup_revision} are not in it",
                  "The bad file was kept next to the state file as state.json.corrupt-<time> for inspection; "
                  "find what damaged it",
                  _LIST_BACKUPS),
           causes=("A corrupt, truncated, invalid or unsupported state file found on load (see E203, E204, E205).",
                   "A state file that vanished while its backups remained.")),
    _entry("E209", "Backup Not Found",
           "The backup '{backup}' in '{path}' cannot be used: {message}.",
           fixes=(_LIST_BACKUPS,
                  "Pass the backup's file name exactly as listed, "
                  "for example state-r00000012-20250101T120000123456Z.json",
                  "If every backup is damaged, the project must be recreated: repo.get_or_create(path)"),
           causes=("A mistyped backup name.",
                   "The backup was removed by retention (CDE_OTEL_BACKUP_RETENTION keeps the newest ones).",
                   "The backup file is damaged.")),
    _entry("E210", "Storage Unavailable",
           "The storage refused to {operation} '{path}': {reason} ({errno}).",
           fixes=("Free disk space: df -h {path!q}",
                  "Check the filesystem is mounted read-write: mount",
                  "Check permissions: ls -ld {path!q}",
                  "Until a probe write succeeds the project stays read-only; queries keep working"),
           causes=("The disk is full (ENOSPC) or over quota (EDQUOT).",
                   "A read-only filesystem (EROFS).",
                   "Permission denied (EACCES, EPERM).")),
    _entry("E211", "Backup Of Another Project",
           "The backup '{backup}' belongs to project {backup_project_id} ('{backup_project_name}'), not to the "
           "project at '{path}' ({project_id}); nothing was restored.",
           fixes=("List this project's own backups: cde-otel state backups {path!q}",
                  "To copy a project, copy its whole directory (cp -r); the copy keeps its history and backups",
                  "If the file was copied into .cde/backups by mistake, move it out"),
           causes=("A backup file copied from another project's .cde/backups.",
                   "Two projects' .cde directories mixed up by hand.")),
    _entry("E212", "Recovery Refused",
           "The state file '{path}' is bad ({cause_code}) and no valid backup of this project was found "
           "({backups_checked} checked, {foreign_backups} of another project ignored); the project is read-only.",
           fixes=(_LIST_BACKUPS,
                  "Restore a backup you know is this project's, explicitly: cde-otel state restore PROJECT_DIR BACKUP",
                  "Inspect the bad file before replacing it: it is left in place, untouched"),
           causes=("Every valid backup in .cde/backups belongs to another project (copied in by hand).",
                   "Backups of several projects mixed, and the bad state file no longer tells which is this one.")),
    _entry("E213", "Revision Limit Reached",
           "The state at '{path}' is at revision {revision}, the highest a state can have ({max_revision}).",
           fixes=("Start the project's state over from its current content: copy the project out, remove .cde/, "
                  "and create it again",),
           causes=("A state file edited by hand to a huge revision number.",)),
    _entry("E214", "State File Not A Regular File",
           "'{path}' is not a regular file ({kind}); it was not read, so nothing could hang on it.",
           fixes=("Look at what is there: ls -l {path!q}",
                  "Move it away and restore a backup: cde-otel state restore PROJECT_DIR BACKUP"),
           causes=("A named pipe (FIFO), a device or a socket created where the state file belongs.",)),
    # -- validation (E3xx) ----------------------------------------------------------
    _entry("E301", "Invalid Prompt",
           "The feature prompt was rejected: {message}.",
           fixes=("Pass the feature description as non-empty text: project.start_feature('Add a login page')",
                  f"Keep the prompt under {MAX_PROMPT_LENGTH} characters; put long material in artifacts"),
           causes=("An empty or whitespace-only prompt.", "A prompt that is not a string.",
                   "A prompt over the maximum length.")),
    _entry("E302", "Invalid Name",
           "The {field} was rejected: {message}.",
           fixes=("Pass a short, non-empty text name",
                  f"Keep names under {MAX_NAME_LENGTH} characters",
                  "Omit the name to get a default one (derived from the prompt or the directory)"),
           causes=("An empty name.", "A name that is not a string.", "A name over the maximum length.")),
    _entry("E303", "Unknown Phase",
           "'{phase}' is not a workflow phase; the phases are: {phases}.",
           fixes=(f"Use one of the phase names exactly, in lower case: {', '.join(PHASES)}",
                  "Use the next phase after feature.current_phase; finish with feature.complete()"),
           causes=("A typo or a capitalised phase name.", "Passing a status (e.g. 'designing') instead of a phase.")),
    _entry("E304", "Unknown Status",
           "'{status}' is not a project status; the statuses are: {statuses}.",
           fixes=("Pass a ProjectStatus member: project.transition_status(ProjectStatus.ACTIVE)",
                  "Or use project.activate() and project.archive()"),
           causes=("A typo or an upper-case status string.",)),
    _entry("E305", "Invalid Argument",
           "The argument '{field}' was rejected: {message}.",
           fixes=("Check the argument's type and allowed values in the error context",
                  "Phase results must be a JSON-serialisable mapping, for example {{'summary': 'done'}}",
                  "Workflow types are: default, quick-fix, research, documentation, refactor, hotfix"),
           causes=("A value of the wrong type.", "A value outside the allowed set.",
                   "Results containing objects JSON cannot store.")),
    # -- local telemetry (E4xx) -----------------------------------------------------
    _entry("E401", "Local Telemetry Directory Not Found",
           "No local telemetry at '{path}': {reason}.",
           fixes=("Pass the service the server ran as: --service NAME (its OTEL_SERVICE_NAME)",
                  "Or the directory itself: --dir PATH (the server's CDE_OTEL_LOCAL_DIR, if it had one)",
                  "List the services that recorded something: ls {parent!q}",
                  "Nothing is written locally when an OTLP endpoint is set: query --jaeger or --prometheus"),
           causes=("Telemetry was never enabled (CDE_OTEL_ENABLED=true) for that service.",
                   "Another service name or CDE_OTEL_LOCAL_DIR than the server's.",
                   "The server shipped to a collector (OTEL_EXPORTER_OTLP_ENDPOINT), so it kept no files.")),
    _entry("E402", "Local Telemetry Unreadable",
           "Cannot read '{path}': {reason}.",
           fixes=("Check the permissions: ls -ld {path!q}",
                  "Run the command as the user that ran the server"),
           causes=("The files belong to another user (a server run under another account or in a container).",)),
    _entry("E403", "No Local Telemetry",
           "No {signal} files ({signal}.jsonl or rotated {signal}.*.jsonl) in '{path}'.",
           fixes=("Check that the server ran with CDE_OTEL_ENABLED=true and without an OTLP endpoint",
                  "Check the signal is not turned off (OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER=none)",
                  "See what is there: ls -l {path!q}"),
           causes=("The service recorded no data of that signal yet (metrics arrive every export interval).",
                   "The signal's exporter was set to none, console or otlp.")),
    _entry("E404", "Invalid Trace Id",
           "'{trace_id}' is not a trace id: {reason}.",
           fixes=("Copy the id from the trace column of: cde-otel traces",
                  "A trace id is 32 hexadecimal digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736"),
           causes=("A span id (16 digits) or a truncated id.", "A typo.")),
    _entry("E405", "Trace Not Found",
           "No span of trace {trace_id} in {source}.",
           fixes=("List the recent ones: cde-otel traces (add --jaeger URL for the stack)",
                  "Old files may have been rotated out: the oldest are dropped beyond CDE_OTEL_LOCAL_MAX_MB",
                  "Jaeger only finds traces of --service: pass the service the span came from"),
           causes=("The trace was recorded by another service or on another machine.",
                   "The trace was dropped (rotation, Jaeger's retention) or never exported (sampling).")),
    _entry("E406", "Backend Unreachable",
           "{backend} at {url} did not answer: {reason}.",
           fixes=("Check the URL and that the backend runs: curl -sS {url!q}",
                  "Jaeger's query API is on port 16686, Prometheus on 9090, a collector's OTLP/HTTP on 4318",
                  "An interrupted export resumes without duplicates: run the same cde-otel export again"),
           causes=("The backend is not running or listens elsewhere.", "A firewall or proxy in the way.",
                   "The backend stayed overloaded (429/503) through every retry.")),
    _entry("E407", "Backend Error Response",
           "{backend} at {url} answered HTTP {status}: {reason}.",
           fixes=("Check the URL points at the right API: Jaeger's query port, Prometheus' web port, the "
                  "collector's OTLP/HTTP receiver",
                  "Read the backend's log for why it refused the request"),
           causes=("A URL that points at another service or path.",
                   "A query or a batch the backend refused (e.g. Prometheus rejects samples older than its head "
                   "block).")),
    _entry("E408", "Export Already Running",
           "Another cde-otel export of '{path}' holds its lock ({lock}).",
           fixes=("Wait for it to finish; both would send the same data",
                  "If no export runs (a killed one), run the command again: the lock is released with its process"),
           causes=("Two exports of the same directory at once.",)),
    _entry("E409", "Export State Invalid",
           "The export progress file '{path}' cannot be used: {reason}.",
           fixes=("Move it aside and export again; without it everything is sent again (duplicates): "
                  "mv {path!q} {path!q}.bad",
                  "Or export only what you know was not sent, from a copy of the directory"),
           causes=("The file was edited by hand or written by a newer cde-otel.",)),
    # -- system (E9xx) --------------------------------------------------------------
    _entry("E901", "Circuit Breaker Open",
           "The circuit breaker '{name}' is open after {failure_threshold} consecutive failures; "
           "calls resume in {remaining_s} seconds.",
           fixes=("Wait for the cooldown, then retry: the next call is a trial, and its success closes the breaker",
                  "Fix the failure that opened it: look at the previous errors in the logs",
                  "Tune the breaker: CDE_OTEL_BREAKER_FAILURES and CDE_OTEL_BREAKER_TIMEOUT_S"),
           causes=("The same dependency (usually storage: E201, E206, E210) failed CDE_OTEL_BREAKER_FAILURES "
                   "times in a row.",)),
    _entry("E902", "Internal Error",
           "An unexpected internal error happened ({exception_type}).",
           fixes=("Retry the operation: state is written atomically, so the last saved state is intact",
                  "See the traceback in the logs (logger 'cde_otel'; set CDE_OTEL_LOG_LEVEL=debug for more)",
                  "Report it with that log excerpt and the output of: pip show cde-otel"),
           causes=("A bug in cde-otel or in code it calls.",)),
    _entry("E903", "Invalid Configuration",
           "The setting {setting}='{value}' is not a valid {expected}.",
           fixes=("Fix or unset {setting}; the settings table in docs/configuration.md lists each "
                  "CDE_OTEL_* variable's type and default",
                  "Check the environment the process really gets: env | grep CDE_OTEL_"),
           causes=("A typo in a value, or a number where a word is expected (or the reverse).",
                   "A value outside the allowed choices.")),
)  # fmt: skip

#: Every catalog row, by code. A test requires exactly one row per registered code.
CATALOG: Mapping[str, CatalogEntry] = MappingProxyType({entry.code: entry for entry in _ENTRIES})


def _fallback(spec: ErrorCode) -> CatalogEntry:
    title = spec.name.replace("_", " ").title()
    return CatalogEntry(spec.code, title, spec.summary, (), ())


def normalize_code(code: str) -> str:
    """``"e101"``, ``" E101 "`` and ``"101"`` all mean ``"E101"``."""
    text = code.strip().upper()
    if text.isdigit():
        text = f"E{int(text):03d}"
    return text


def catalog_entry(code: str) -> CatalogEntry | None:
    """The entry for ``code`` (any case, ``E`` optional), or None when the code is not registered."""
    key = normalize_code(code)
    if key not in ERROR_CODES:
        return None
    return CATALOG.get(key) or _fallback(ERROR_CODES[key])


def all_entries() -> list[CatalogEntry]:
    """One entry per registered code, in code order (fallbacks included)."""
    return [entry for code in sorted(ERROR_CODES) if (entry := catalog_entry(code)) is not None]
