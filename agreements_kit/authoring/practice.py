"""The practice folder: who the practice is, its therapists, where things live.

``agreements init DIR`` creates it; every other command finds it through
``--practice DIR``, the ``AGREEMENTS_PRACTICE`` environment variable, or the
current folder, in that order. Layout::

    practice.yaml   settings (this module reads it)
    drafts/         rendered, unsigned agreements
    signed/         the archive of signed agreements
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agreements_kit import resources
from agreements_kit.authoring import yamlfile
from agreements_kit.authoring.professions import PROFESSION_VALUE, known, profession_code
from agreements_kit.authoring.yamlfile import LineDict
from agreements_kit.errors import PracticeError
from agreements_kit.formats.text import check_name, check_text
from agreements_kit.store.files import DIR_MODE, FILE_MODE

if TYPE_CHECKING:
    from agreements_kit.authoring.handoff import Handoff

SETTINGS = "practice.yaml"
THERAPIST_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Therapist:
    id: str
    name: str
    credentials: str
    # The profession code (authoring/professions.py) that picks profession-specific law texts; None: not given.
    profession: str | None = None
    # The line of practice.yaml that names the therapist, for messages (None: not from practice.yaml).
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Timestamping:
    """Where signature time-stamp tokens come from (RFC 3161 TSAs, tried in order).

    ``on_failure`` is ``stop`` (the default: no TSA answering means no signature) or
    ``archive-untimestamped`` (the signature is archived without a token, and every
    verdict names its time as the signer's claim only). Never a local time instead.
    """

    urls: tuple[str, ...]
    on_failure: str = "stop"
    timeout: float = 10.0


ON_FAILURE = ("stop", "archive-untimestamped")


@dataclass
class Practice:
    root: Path
    name: str
    phone: str
    address: str
    email: str
    jurisdiction: str | None
    therapists: dict[str, Therapist]
    jurisdiction_line: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    variable_lines: dict[str, int] = field(default_factory=dict)
    clauses_dir: Path | None = None
    templates_dir: Path | None = None
    timestamping: Timestamping | None = None
    handoff: Handoff | None = None  # the client's copy by email, print or phone (authoring/handoff.py)

    @property
    def settings_path(self) -> Path:
        return self.root / SETTINGS

    @property
    def drafts(self) -> Path:
        return self.root / "drafts"

    @property
    def archive(self) -> Path:
        return self.root / "signed"

    def library_dir(self) -> Path:
        return self.clauses_dir or resources.clauses_dir()

    def template_dir(self) -> Path:
        return self.templates_dir or resources.templates_dir()


def locate(option: str | Path | None) -> Path:
    """The practice folder named by ``--practice``, the environment, or the current folder."""
    if option:
        return Path(option)
    env = os.environ.get("AGREEMENTS_PRACTICE")
    if env:
        return Path(env)
    return Path.cwd()


def load_practice(root: str | Path) -> Practice:
    root = Path(root)
    path = root / SETTINGS
    if not path.is_file():
        raise PracticeError(f"no {SETTINGS} in {root} (create one with 'agreements init DIR', "
                            "or point --practice or AGREEMENTS_PRACTICE at it)")
    return parse_practice(yamlfile.load(path, PracticeError), root)


def parse_practice(d: object, root: Path) -> Practice:
    """Check parsed practice settings; ``root`` is the practice folder they belong to."""
    path = root / SETTINGS
    if not isinstance(d, LineDict):
        raise PracticeError("settings must be a mapping", path=path, line=1)
    _keys(d, {"practice", "therapists"}, {"jurisdiction", "variables", "clauses", "templates",
                                                  "timestamping", "handoff"}, "practice.yaml", path)
    p = d["practice"]
    if not isinstance(p, LineDict):
        raise PracticeError("'practice' must be a mapping", path=path, line=d.line_of("practice"))
    _keys(p, {"name"}, {"phone", "address", "email"}, "'practice'", path)
    info = {}
    for key in ("name", "phone", "address", "email"):
        value = p.get(key, "")
        if not isinstance(value, str):
            raise PracticeError(f"'{key}' of 'practice' must be a string", path=path, line=p.line_of(key))
        problem = check_text(value)
        if problem:
            raise PracticeError(f"'{key}' of 'practice' {problem}", path=path, line=p.line_of(key))
        info[key] = value.strip()
    if not info["name"]:
        raise PracticeError("'name' of 'practice' must not be empty", path=path, line=p.line_of("name"))
    jurisdiction = d.get("jurisdiction")
    jurisdiction_line = d.line_of("jurisdiction") if "jurisdiction" in d else None
    if jurisdiction is not None and not isinstance(jurisdiction, str):
        raise PracticeError("'jurisdiction' must be a string such as US-NY", path=path,
                            line=d.line_of("jurisdiction"))
    therapists = _therapists(d, path)
    variables = d.get("variables") or LineDict()
    if not isinstance(variables, LineDict):
        raise PracticeError("'variables' must be a mapping", path=path, line=d.line_of("variables"))
    for name, value in variables.items():
        if name == PROFESSION_VALUE:
            raise PracticeError(f"'{name}' is not a variable: give each therapist a 'profession' instead",
                                path=path, line=variables.line_of(name))
        problem = check_text(value) if isinstance(value, str) else None
        if problem:
            raise PracticeError(f"variable '{name}' {problem}", path=path, line=variables.line_of(name))
    return Practice(
        root=root, name=info["name"], phone=info["phone"], address=info["address"], email=info["email"],
        jurisdiction=jurisdiction, jurisdiction_line=jurisdiction_line, therapists=therapists,
        variables=dict(variables), variable_lines=dict(variables.lines),
        clauses_dir=_folder(d, "clauses", root, path), templates_dir=_folder(d, "templates", root, path),
        timestamping=_timestamping(d, path), handoff=_handoff(d, root, path),
    )


def _timestamping(d: LineDict, path: Path) -> Timestamping | None:
    t = d.get("timestamping")
    if t is None:
        return None
    if not isinstance(t, LineDict):
        raise PracticeError("'timestamping' must be a mapping with 'tsa' (a list of URLs)", path=path,
                            line=d.line_of("timestamping"))
    _keys(t, {"tsa"}, {"on_failure", "timeout"}, "'timestamping'", path)
    urls = t["tsa"]
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls:
        raise PracticeError("'tsa' of 'timestamping' must list at least one TSA URL", path=path, line=t.line_of("tsa"))
    for url in urls:
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
            raise PracticeError(f"TSA URL {url!r} must be an http:// or https:// URL", path=path, line=t.line_of("tsa"))
    on_failure = t.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        raise PracticeError(f"'on_failure' of 'timestamping' must be one of {', '.join(ON_FAILURE)}", path=path,
                            line=t.line_of("on_failure"))
    timeout = t.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 120:
        raise PracticeError("'timeout' of 'timestamping' must be a number of seconds between 0 and 120", path=path,
                            line=t.line_of("timeout"))
    return Timestamping(tuple(urls), on_failure, float(timeout))


def _handoff(d: LineDict, root: Path, path: Path) -> Handoff:
    from agreements_kit.authoring.handoff import parse_handoff

    return parse_handoff(d, root, path)


def _keys(d: LineDict, required: set[str], optional: set[str], what: str, path: Path) -> None:
    for key in d:
        if key not in required | optional:
            raise PracticeError(f"unknown key '{key}' in {what} (allowed: {', '.join(sorted(required | optional))})",
                                path=path, line=d.line_of(key))
    for key in sorted(required - set(d)):
        raise PracticeError(f"missing key '{key}' in {what}", path=path, line=d.line)


def _therapists(d: LineDict, path: Path) -> dict[str, Therapist]:
    raw = d["therapists"]
    if not isinstance(raw, LineDict) or not raw:
        raise PracticeError("'therapists' must map therapist ids to their name and credentials",
                            path=path, line=d.line_of("therapists"))
    out = {}
    for tid, t in raw.items():
        line = raw.line_of(tid)
        if not isinstance(tid, str) or not THERAPIST_ID_RE.match(tid):
            raise PracticeError(f"therapist id '{tid}' must be lowercase letters, digits, '-' or '_'",
                                path=path, line=line)
        if not isinstance(t, LineDict):
            raise PracticeError(f"therapist '{tid}' must be a mapping with name and credentials", path=path, line=line)
        _keys(t, {"name"}, {"credentials", "profession"}, f"therapist '{tid}'", path)
        name, cred = t["name"], t.get("credentials", "")
        if not isinstance(name, str) or not isinstance(cred, str):
            raise PracticeError(f"name and credentials of therapist '{tid}' must be strings", path=path, line=line)
        problem = check_name(name) or check_text(cred)
        if problem:
            raise PracticeError(f"therapist '{tid}': {problem}", path=path, line=line)
        profession = None
        if "profession" in t:
            raw_profession = t["profession"]
            profession = profession_code(raw_profession) if isinstance(raw_profession, str) else None
            if profession is None:
                raise PracticeError(f"'profession' of therapist '{tid}' must be one of: {known()} "
                                    f"(not {raw_profession!r})", path=path, line=t.line_of("profession"))
        out[tid] = Therapist(tid, name.strip(), cred.strip(), profession, line)
    return out


def _folder(d: LineDict, key: str, root: Path, path: Path) -> Path | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PracticeError(f"'{key}' must be a folder path", path=path, line=d.line_of(key))
    folder = (root / value).resolve()
    if not folder.is_dir():
        raise PracticeError(f"'{key}' folder not found: {folder}", path=path, line=d.line_of(key))
    return folder


__all__ = ["Practice", "Therapist", "Timestamping", "load_practice", "parse_practice", "locate", "FILE_MODE",
           "DIR_MODE"]
