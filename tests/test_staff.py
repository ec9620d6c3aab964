"""Staff accounts (PRACTICE/staff.json, argon2id) and ``agreements staff add/remove/list``.

The store is exercised through the library and the command (in-process, and once in a
real terminal for the hidden prompt); the accounts file is checked as a file: owner
only, replaced atomically, strict when read back. The signing record's optional
``identity.staff_account`` is checked against the strict record parser: old records
without it stay valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import stat
import subprocess
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from helpers import cheap_hasher

from agreements_kit.errors import AgreementsError, StaffError
from agreements_kit.formats import jsonio
from agreements_kit.formats.record import parse_record
from agreements_kit.intake.staff import FILE, KnownDevices, StaffStore
from agreements_kit.signing.setup import init_practice

INTAKE_PASS = "staff-test-intake-pass"
PASSWORD = "a long front desk passphrase"
VECTOR = Path(__file__).resolve().parent / "vectors" / "legacy-v1" / "signed" / "agr-a8e9f23ce3aee920" \
    / "01-client.json"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("staff") / "practice"
    init_practice(root, name="Staff Test Practice", jurisdiction="US", passphrase=b"staff-root-pass",
                  intake_passphrase=INTAKE_PASS.encode(), clinician_passphrase=b"staff-clinician-pass",
                  therapists={"lee": ("Dr. Robin Lee", "PhD", "psychologist")})
    return root


@pytest.fixture
def pr(base: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(base, tmp_path / "practice"))


def store(root: Path) -> StaffStore:
    return StaffStore(root, cheap_hasher())


def one_error_line(res, *words: str) -> str:
    assert res.exit_code == 2, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- the store


def test_an_account_is_stored_as_an_argon2id_hash_in_a_private_file(pr: Path):
    s = store(pr)
    account = s.add("Pat.Kim", "Pat  Kim", PASSWORD)
    assert (account.name, account.full_name) == ("pat.kim", "Pat Kim")
    path = pr / FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert PASSWORD.encode() not in data
    document = json.loads(data)
    assert document["format"] == "agreements-kit/staff-accounts" and document["format_version"] == 1
    [entry] = document["accounts"]
    assert entry["password"].startswith("$argon2id$v=19$")
    assert set(entry) == {"name", "full_name", "password", "added"}
    assert [p.name for p in pr.iterdir() if p.name.startswith(f".{FILE}") and p.name.endswith(".tmp")] == []
    assert s.authenticate("pat.kim", PASSWORD) == account
    assert s.authenticate("PAT.KIM ", PASSWORD) == account
    assert s.authenticate("pat.kim", PASSWORD + " ") is None
    assert s.authenticate("pat.kim", "") is None
    assert s.authenticate("nobody", PASSWORD) is None


def test_the_default_hasher_is_argon2id_with_rfc_9106s_low_memory_profile(pr: Path):
    s = StaffStore(pr)
    assert (s.hasher.time_cost, s.hasher.memory_cost, s.hasher.parallelism) == (3, 65536, 4)
    assert s.hasher.type.name == "ID"


def test_a_hash_with_old_parameters_is_replaced_at_the_next_sign_in(pr: Path):
    store(pr).add("pat.kim", "Pat Kim", PASSWORD)
    old = store(pr).get("pat.kim").password_hash
    stronger = StaffStore(pr, PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.hasher.check_needs_rehash(old)
    assert stronger.authenticate("pat.kim", "wrong wrong wrong wrong") is None
    assert stronger.get("pat.kim").password_hash == old  # a wrong password changes nothing
    assert stronger.authenticate("pat.kim", PASSWORD) is not None
    new = StaffStore(pr, cheap_hasher()).get("pat.kim").password_hash
    assert new != old and "t=2" in new and not stronger.hasher.check_needs_rehash(new)
    assert stronger.authenticate("pat.kim", PASSWORD) is not None
    assert stat.S_IMODE((pr / FILE).stat().st_mode) == 0o600


def test_one_account_per_name_and_remove(pr: Path):
    s = store(pr)
    s.add("pat.kim", "Pat Kim", PASSWORD)
    s.add("sam", "Sam Ortiz", PASSWORD + " two")
    with pytest.raises(StaffError, match="already a staff account 'pat.kim'"):
        s.add("PAT.KIM", "Someone Else", PASSWORD + " three")
    assert sorted(s.accounts()) == ["pat.kim", "sam"]
    assert s.remove("pat.kim").full_name == "Pat Kim"
    assert sorted(s.accounts()) == ["sam"]
    assert s.authenticate("pat.kim", PASSWORD) is None
    with pytest.raises(StaffError) as info:
        s.remove("pat.kim")
    assert info.value.code == "not-found.staff"


def test_another_process_sees_changes_at_once(pr: Path):
    reader, writer = store(pr), store(pr)
    assert reader.accounts() == {}
    writer.add("pat.kim", "Pat Kim", PASSWORD)
    assert reader.get("pat.kim") is not None
    writer.remove("pat.kim")
    assert reader.get("pat.kim") is None


@pytest.mark.parametrize(("name", "words"), [
    ("", "must be 1 to 32"), ("Pat Kim", "must be 1 to 32"), ("-pat", "must be 1 to 32"), ("p" * 33, "must be 1 to 32"),
    ("pat/kim", "must be 1 to 32"), ("pät", "must be 1 to 32"), ("pat\n", None),
])
def test_sign_in_names_are_short_and_plain(pr: Path, name: str, words: str | None):
    if words is None:  # surrounding white space is trimmed
        assert store(pr).add(name, "Pat Kim", PASSWORD).name == "pat"
        return
    with pytest.raises(StaffError, match=words):
        store(pr).add(name, "Pat Kim", PASSWORD)


@pytest.mark.parametrize(("password", "words"), [
    ("short pass", "shorter than 15 characters"), ("x" * 257, "longer than 256"),
    ("pat.kim" + " " * 8, None), ("P a t K i m P a t", None),
])
def test_passwords_are_long_and_not_the_persons_name(pr: Path, password: str, words: str | None):
    s = store(pr)
    if words is None:
        with pytest.raises(StaffError, match="shorter|must not be the person's name"):
            s.add("pat.kim", "Pat Kim Pat", password)
        return
    with pytest.raises(StaffError, match=words):
        s.add("pat.kim", "Pat Kim", password)
    assert not (pr / FILE).exists()


@pytest.mark.parametrize("content", [
    b"not json", b"[]", b'{"format": "other", "format_version": 1, "accounts": []}',
    b'{"format": "agreements-kit/staff-accounts", "format_version": 2, "accounts": []}',
    b'{"format": "agreements-kit/staff-accounts", "format_version": 1, "accounts": [], "extra": 1}',
    b'{"format": "agreements-kit/staff-accounts", "format_version": 1, "accounts": [{"name": "pat"}]}',
    b'{"format": "agreements-kit/staff-accounts", "format_version": 1, "format_version": 1, "accounts": []}',
])
def test_a_damaged_accounts_file_is_refused_in_one_line(pr: Path, content: bytes):
    (pr / FILE).write_bytes(content)
    with pytest.raises(StaffError) as info:
        store(pr).accounts()
    assert "is not a staff accounts file" in info.value.message and "\n" not in info.value.message


def test_an_account_with_a_plain_or_bcrypt_hash_is_refused(pr: Path):
    store(pr).add("pat.kim", "Pat Kim", PASSWORD)
    document = json.loads((pr / FILE).read_bytes())
    for fake in ("a long front desk passphrase", "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"):
        document["accounts"][0]["password"] = fake
        (pr / FILE).write_text(json.dumps(document))
        with pytest.raises(StaffError, match="no argon2id password hash"):
            store(pr).accounts()


def test_known_device_cookies_name_one_account_and_are_signed():
    devices = KnownDevices()
    cookie = devices.issue("pat.kim")
    assert devices.device(cookie, "pat.kim") is not None
    assert devices.device(cookie, "sam") is None
    assert devices.device(cookie.replace("pat.kim", "sam", 1), "sam") is None  # the MAC covers the name
    assert devices.device(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), "pat.kim") is None
    assert KnownDevices().device(cookie, "pat.kim") is None  # another server run: another key
    for junk in (None, "", "pat.kim", "..", "pat.kim.x"):
        assert devices.device(junk, "pat.kim") is None


# --------------------------------------------------------------------------- the command


def password_file(tmp_path: Path, text: str = PASSWORD + "\n") -> Path:
    path = tmp_path / "password.txt"
    path.write_text(text)
    return path


def test_cli_add_list_remove(cli, pr: Path, tmp_path: Path):
    res = cli("staff", "add", "pat.kim", "--full-name", "Pat Kim", "--password-file", password_file(tmp_path),
              "--practice", pr)
    assert res.exit_code == 0, res.stderr
    assert "staff account 'pat.kim' (Pat Kim) added" in res.stdout
    assert StaffStore(pr).authenticate("pat.kim", PASSWORD) is not None  # the real (default) parameters
    res = cli("staff", "list", "--practice", pr)
    assert res.exit_code == 0 and res.stdout.startswith("pat.kim\tPat Kim\tadded ")
    assert "argon2" not in res.stdout and PASSWORD not in res.stdout
    res = cli("staff", "remove", "pat.kim", "--practice", pr)
    assert res.exit_code == 0 and "removed" in res.stdout
    assert cli("staff", "list", "--practice", pr).stdout.startswith("no staff accounts")
    one_error_line(cli("staff", "remove", "pat.kim", "--practice", pr), "no staff account 'pat.kim'")


def test_cli_full_name_defaults_to_the_name_and_only_the_first_line_is_the_password(cli, pr: Path, tmp_path: Path):
    res = cli("staff", "add", "desk", "--password-file", password_file(tmp_path, PASSWORD + "\r\nignored\n"),
              "--practice", pr)
    assert res.exit_code == 0, res.stderr
    account = store(pr).get("desk")
    assert account.full_name == "desk"
    assert StaffStore(pr).authenticate("desk", PASSWORD) is not None


def test_cli_never_takes_a_password_from_the_command_line(cli, pr: Path, monkeypatch):
    res = cli("staff", "add", "pat.kim", PASSWORD, "--practice", pr)
    assert res.exit_code == 2 and "unexpected extra argument" in res.stderr.lower()
    for option in ("--password", "-p"):
        res = cli("staff", "add", "pat.kim", option, PASSWORD, "--practice", pr)
        assert res.exit_code == 2 and "no such option" in res.stderr.lower()
    monkeypatch.setenv("AGREEMENTS_PASSPHRASE", PASSWORD)  # nor from any environment variable
    one_error_line(cli("staff", "add", "pat.kim", "--practice", pr), "password is needed", "--password-file")
    assert not (pr / FILE).exists()


@pytest.mark.parametrize(("args", "password", "words"), [
    (["pat.kim"], "short", "shorter than 15 characters"),
    (["Pat Kim"], PASSWORD, "must be 1 to 32"),
    (["pat.kim", "--full-name", "Pat <b>Kim</b>"], PASSWORD, "not part of a person's name"),
    (["pat.kim", "--full-name", "Pat Kim"], "Pat Kim Pat Kim Pat", None),
    (["pat.kim"], INTAKE_PASS, "the intake CA's passphrase"),
    (["pat.kim"], "staff-root-pass" + "", "the root's passphrase"),
    (["pat.kim"], "staff-clinician-pass", "the clinician CA's passphrase"),
])
def test_cli_refusals(cli, pr: Path, tmp_path: Path, args, password, words):
    res = cli("staff", "add", *args, "--password-file", password_file(tmp_path, password + "\n"), "--practice", pr)
    if words is None:  # "Pat Kim Pat Kim Pat" is long enough and not the name itself: accepted
        assert res.exit_code == 0, res.stderr
        return
    one_error_line(res, words)
    assert not (pr / FILE).exists() or not store(pr).accounts()


def test_cli_duplicate_and_unreadable_password_file(cli, pr: Path, tmp_path: Path):
    file = password_file(tmp_path)
    assert cli("staff", "add", "pat.kim", "--password-file", file, "--practice", pr).exit_code == 0
    one_error_line(cli("staff", "add", "pat.kim", "--password-file", file, "--practice", pr), "already")
    one_error_line(cli("staff", "add", "sam", "--password-file", tmp_path / "missing", "--practice", pr),
                   "cannot read password file")


def test_cli_prompts_twice_in_a_terminal_and_echoes_nothing(agreements_bin: str, pr: Path):
    """The real command in a real pseudo-terminal: a hidden prompt, typed twice."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGREEMENTS_")}
    proc = subprocess.Popen([agreements_bin, "staff", "add", "pat.kim", "--full-name", "Pat Kim", "--practice",
                             str(pr)], stdin=secondary, stdout=secondary, stderr=secondary, env=env,
                            start_new_session=True)
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            ready, _, _ = select.select([primary], [], [], 60)
            assert ready, f"no {marker!r} from the command: {seen!r}"
            try:
                chunk = os.read(primary, 1024)
            except OSError:
                chunk = b""
            assert chunk, f"the command ended before {marker!r}: {seen!r}"
            seen += chunk

    try:
        read_until(b"New password: ")
        os.write(primary, PASSWORD.encode() + b"\n")
        read_until(b"Repeat for confirmation: ")
        os.write(primary, PASSWORD.encode() + b"\n")
        read_until(b"added")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert PASSWORD.encode() not in seen  # never echoed
    assert StaffStore(pr).authenticate("pat.kim", PASSWORD) is not None


@pytest.mark.parametrize(("typed", "words"), [
    (PASSWORD, b"agr-nope"),  # signed in: the next check, of the agreement, answers
    (PASSWORD + "x", b"do not match a staff account"),
])
def test_cli_intake_open_prompts_once_for_the_staff_password(agreements_bin: str, pr: Path, typed, words):
    """``agreements intake open --staff NAME`` in a real pseudo-terminal: one hidden prompt, never echoed."""
    store(pr).add("pat.kim", "Pat Kim", PASSWORD)
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGREEMENTS_")}
    proc = subprocess.Popen([agreements_bin, "intake", "open", "agr-nope", "--identity", "photo ID", "--checked-by",
                             "Desk", "--staff", "pat.kim", "--practice", str(pr)], stdin=secondary, stdout=secondary,
                            stderr=secondary, env=env, start_new_session=True)
    os.close(secondary)
    seen = b""
    try:
        while b"Staff password: " not in seen:
            ready, _, _ = select.select([primary], [], [], 60)
            assert ready, f"no prompt from the command: {seen!r}"
            chunk = os.read(primary, 1024)
            assert chunk, f"the command ended before its prompt: {seen!r}"
            seen += chunk
        os.write(primary, typed.encode() + b"\n")
        assert proc.wait(timeout=120) == 2
        with contextlib.suppress(OSError):  # the terminal's other end is gone once everything is read
            while select.select([primary], [], [], 1)[0] and (chunk := os.read(primary, 4096)):
                seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert typed.encode() not in seen  # never echoed, nor printed
    assert words in seen and b"Repeat for confirmation" not in seen
    assert not (pr / "intake" / "pending").exists()


def test_cli_staff_help_lists_the_commands(run_bin):
    res = run_bin("staff", "--help")
    assert res.exit_code == 0
    for command in ("add", "remove", "list"):
        assert f"  {command} " in res.stdout


# --------------------------------------------------------------------------- the record's identity.staff_account


def record_with(identity: dict, role: str = "client", version: int = 2) -> bytes:
    data = json.loads(VECTOR.read_bytes())  # a real client record (format 1), re-encoded as asked
    data["identity"] = identity
    data["format_version"] = version
    if role == "therapist":
        data["signer"] = {"role": "therapist", "name": "Dr. Robin Lee", "therapist_id": "lee"}
        data["esign"] = None
    return jsonio.jcs(data) if version == 2 else jsonio.canonical_json(data)


def test_a_record_may_name_the_staff_account_and_old_records_stay_valid():
    plain = {"method": "photo ID", "checked_by": "Pat Kim"}
    assert parse_record(record_with(plain), "r").data["identity"] == plain
    named = {**plain, "staff_account": "pat.kim"}
    assert parse_record(record_with(named), "r").data["identity"] == named


@pytest.mark.parametrize(("identity", "role", "version", "words"), [
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff_account": "Pat Kim"}, "client", 2, "expected form"),
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff_account": ""}, "client", 2, "expected form"),
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff_account": 7}, "client", 2, "must be a string"),
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff_account": "pat"}, "therapist", 2, "belongs only"),
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff_account": "pat"}, "client", 1, "belongs only"),
    ({"method": "photo ID", "checked_by": "Pat Kim", "staff": "pat"}, "client", 2, "unknown key"),
])
def test_a_malformed_or_misplaced_staff_account_is_refused(identity, role, version, words):
    with pytest.raises(AgreementsError, match=words):
        parse_record(record_with(identity, role, version), "r")
