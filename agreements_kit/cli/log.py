"""``agreements log``: the ledger's transparency log (signed checkpoints, proofs, a witness).

The lead registers the group in ``cli/commands.py`` (``main.add_command(log)``).
Errors print as one line with their exit code, also when the group runs on its own:
2 for a usage or format problem, 1 when a check was made and failed (an
inconsistent checkpoint, a proof that does not verify, a witness that refuses).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agreements_kit.cli.groups import OneLineGroup
from agreements_kit.errors import LogError

LOG_PASSPHRASE_ENV = "AGREEMENTS_LOG_PASSPHRASE"
WITNESS_PASSPHRASE_ENV = "AGREEMENTS_WITNESS_PASSPHRASE"


def _passphrase(file: Path | None, env: str, prompt: str, confirm: bool = False) -> bytes:
    from agreements_kit.cli.commands import _passphrase as ask  # imported late: commands imports this module

    return ask(file, env, prompt, confirm)


def _practice_root(practice_dir: Path | None) -> Path:
    from agreements_kit.authoring.practice import locate

    return locate(practice_dir)


def _archive(path: Path | None, practice_dir: Path | None = None) -> Path:
    """The archive folder (``signed/``) from a practice folder, the archive itself, or --practice."""
    root = Path(path) if path is not None else _practice_root(practice_dir)
    if (root / "ledger.jsonl").is_file() or root.name == "signed":
        return root
    if (root / "signed").is_dir():
        return root / "signed"
    raise LogError(f"{root} is neither a practice nor an archive (no signed/ledger.jsonl)", path=root,
                   code="not-found.archive")


def _failed(problems: list[tuple[str, str]]) -> None:
    for code, message in problems:
        click.echo(f"error: {message} [{code}]", err=True)
    sys.exit(1)


practice_option = click.option(
    "--practice", "practice_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Practice folder (default: $AGREEMENTS_PRACTICE, else the current folder).")
passphrase_option = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the log key's passphrase from this file (else ${LOG_PASSPHRASE_ENV}, else a prompt).")
log_key_option = click.option(
    "--log-key", type=click.Path(path_type=Path),
    help="The log's verifier key: a file (PRACTICE/pki/log.pub) or the NAME+ID+KEY text (default: the practice's).")


def _log_vkey(log_key: Path | None, practice_dir: Path | None) -> Any:
    from agreements_kit.store import tlog

    if log_key is None:
        return tlog.read_verifier(_practice_root(practice_dir) / "pki" / tlog.PUB_FILE)
    return tlog.read_verifier(log_key)


@click.group(cls=OneLineGroup)
def log() -> None:
    """The ledger's transparency log: signed checkpoints, inclusion and consistency proofs, witnesses."""


@log.group("key")
def key_group() -> None:
    """The log key (Ed25519, its own passphrase; no CA key)."""


@key_group.command("init")
@practice_option
@click.option("--name", default="agreements-kit-log", show_default=True, help="The key name in signature lines.")
@passphrase_option
def key_init(practice_dir: Path | None, name: str, passphrase_file: Path | None) -> None:
    """Make the log key: PRACTICE/pki/log.key.pem (encrypted) and log.pub (give this to auditors)."""
    from agreements_kit.store import tlog

    pki = _practice_root(practice_dir) / "pki"
    key = tlog.create_log_key(pki, name, passphrase=_passphrase(passphrase_file, LOG_PASSPHRASE_ENV,
                                                                 "New log key passphrase", confirm=True))
    click.echo(f"log key: {pki / tlog.KEY_FILE}")
    click.echo(f"verifier key ({pki / tlog.PUB_FILE}): {key.verifier.text}")
    click.echo(f"origin: {key.origin}")


@log.command("checkpoint")
@practice_option
@passphrase_option
def checkpoint_cmd(practice_dir: Path | None, passphrase_file: Path | None) -> None:
    """Sign a checkpoint of the whole ledger (refused if the ledger no longer holds the last one)."""
    from agreements_kit.store import tlog

    root = _practice_root(practice_dir)
    archive = _archive(None, root)
    key = tlog.load_log_key(root / "pki", _passphrase(passphrase_file, LOG_PASSPHRASE_ENV, "Log key passphrase"))
    cp, data = tlog.sign_checkpoint(archive, key)
    click.echo(data.decode("utf-8"), nl=False)
    click.echo(f"signed: {tlog.log_dir(archive) / tlog.LATEST} ({cp.describe()})", err=True)


@log.command("show")
@click.argument("archive", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@practice_option
def show(archive: Path | None, practice_dir: Path | None) -> None:
    """Print the latest signed checkpoint of ARCHIVE (a practice or its signed/ folder)."""
    from agreements_kit.store import tlog

    _, data = tlog.latest_checkpoint(_archive(archive, practice_dir))
    click.echo(data.decode("utf-8"), nl=False)


@log.command("prove")
@click.argument("agreement_id")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Prove against this checkpoint (a receipt's, a witness's; default: the latest).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the proof here (new file).")
@practice_option
@log_key_option
def prove(agreement_id: str, checkpoint_file: Path | None, out: Path | None, practice_dir: Path | None,
          log_key: Path | None) -> None:
    """Prove that AGREEMENT_ID's ledger entries are in a checkpoint's tree, and check the proof."""
    from agreements_kit.store import tlog
    from agreements_kit.store.files import write_new
    from agreements_kit.verification import anchors

    archive = _archive(None, practice_dir)
    vkey = _log_vkey(log_key, practice_dir)
    if checkpoint_file is None:
        _, data = tlog.latest_checkpoint(archive)
    else:
        _, data = tlog.read_checkpoint_file(checkpoint_file)
    problems = anchors.check_checkpoint(tlog.ledger_path(archive), data, vkey)
    if problems:
        _failed(problems)
    doc = tlog.inclusion_document(archive, agreement_id, data)
    problems = anchors.check_inclusion(doc, vkey, agreement_id)
    if problems:
        _failed(problems)
    if out is not None:
        try:
            write_new(out, doc)
        except FileExistsError:
            raise LogError(f"{out} already exists", path=out, code="conflict.exists") from None
        from agreements_kit.formats.checkpoint import InclusionProof, parse_proof

        parsed = parse_proof(doc)
        assert isinstance(parsed, InclusionProof)
        click.echo(f"{agreement_id}: {len(parsed.entries)} ledger entries proved in the checkpoint; proof: {out}")
    else:
        click.echo(doc.decode("utf-8"), nl=False)


@log.command("consistency")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@practice_option
@log_key_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the proof here (new file).")
def consistency_cmd(old: Path, new: Path, practice_dir: Path | None, log_key: Path | None,
                    out: Path | None) -> None:
    """Check that checkpoint NEW extends checkpoint OLD (exit 1 with the reason when it does not)."""
    from agreements_kit.store import tlog
    from agreements_kit.store.files import write_new
    from agreements_kit.verification import anchors

    vkey = _log_vkey(log_key, practice_dir)
    old_cp, old_bytes = tlog.read_checkpoint_file(old)
    new_cp, new_bytes = tlog.read_checkpoint_file(new)
    problems = anchors.check_consistency(old_bytes, new_bytes, [], vkey)  # signatures and order first
    if problems and (problems[0][0] != "checkpoint.inconsistent" or old_cp.size > new_cp.size):
        _failed(problems)
    archive = _archive(None, practice_dir)
    tree = tlog.build_tree(tlog.ledger_lines(archive), new_cp.size)
    why = tlog.mismatch(tree, new_cp, "the new checkpoint")
    if why:
        _failed([("ledger.changed", f"the ledger cannot show the two checkpoints consistent: {why}")])
    proof = tree.consistency_proof(old_cp.size, new_cp.size)
    problems = anchors.check_consistency(old_bytes, new_bytes, proof, vkey)
    if problems:
        _failed(problems)
    if out is not None:
        from agreements_kit.formats.checkpoint import consistency_document

        write_new(out, consistency_document(old_bytes, new_bytes, proof))
    click.echo(f"consistent: the checkpoint of {new_cp.size} entries extends the one of {old_cp.size} "
               f"({len(proof)} hashes of proof)")


@log.group("witness-key")
def witness_key_group() -> None:
    """The witness's own key (kept by a second party, outside the archive)."""


@witness_key_group.command("init")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The witness's state folder (outside the archive).")
@click.option("--name", default="agreements-kit-witness", show_default=True, help="The witness's key name.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Read the witness key's passphrase from this file (else ${WITNESS_PASSPHRASE_ENV}).")
def witness_key_init(state_dir: Path, name: str, passphrase_file: Path | None) -> None:
    """Make the witness key: STATE/witness.key.pem (encrypted) and STATE/witness.pub (its cosignature vkey)."""
    from agreements_kit.store import tlog

    key = tlog.create_witness_key(state_dir, name, passphrase=_passphrase(
        passphrase_file, WITNESS_PASSPHRASE_ENV, "New witness key passphrase", confirm=True))
    click.echo(f"witness key: {state_dir / tlog.WITNESS_KEY_FILE}")
    click.echo(f"witness verifier key ({state_dir / tlog.WITNESS_PUB_FILE}): {key.verifier.text}")


@log.command("witness")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The witness's state folder (its key and the last checkpoint it cosigned).")
@click.option("--log-key", required=True, type=click.Path(path_type=Path),
              help="The log's verifier key (a file, or the NAME+ID+KEY text), obtained from the practice once.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The witness's private key (default: STATE/witness.key.pem).")
@click.option("--archive", "archive_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="With a checkpoint FILE as SOURCE: the archive whose ledger proves it consistent.")
@click.option("--proof", "proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With a checkpoint FILE as SOURCE: a consistency proof document from the last cosigned one.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Read the witness key's passphrase from this file (else ${WITNESS_PASSPHRASE_ENV}).")
def witness_cmd(source: Path, state_dir: Path, log_key: Path, key_file: Path | None, archive_dir: Path | None,
                proof_file: Path | None, passphrase_file: Path | None) -> None:
    """Check SOURCE's checkpoint (an archive's latest, or a FILE) against the last one cosigned, then cosign it.

    Refuses (exit 1, with the reason) a checkpoint not signed by the log key, older
    than the last one cosigned, or not consistent with it.
    """
    from agreements_kit.formats.checkpoint import ConsistencyProof, parse_proof
    from agreements_kit.store import tlog

    vkey = tlog.read_verifier(log_key)
    ledger = proof = None
    if source.is_dir():
        archive = _archive(source)
        _, data = tlog.latest_checkpoint(archive)
        ledger = tlog.ledger_lines(archive)
    else:
        _, data = tlog.read_checkpoint_file(source)
        if archive_dir is not None:
            ledger = tlog.ledger_lines(_archive(archive_dir))
        elif proof_file is not None:
            doc = parse_proof(proof_file.read_bytes(), str(proof_file))
            if not isinstance(doc, ConsistencyProof) or doc.new_checkpoint != data:
                raise LogError(f"{proof_file} is not a consistency proof to this checkpoint", path=proof_file,
                               code="usage.log-proof")
            proof = doc.proof
        else:
            raise LogError("a checkpoint file needs --archive (its ledger) or --proof (a consistency proof)",
                           code="usage.log")
    key = tlog.load_witness_key(key_file or state_dir / tlog.WITNESS_KEY_FILE,
                                _passphrase(passphrase_file, WITNESS_PASSPHRASE_ENV, "Witness key passphrase"))
    cosigned, prev = tlog.witness(state_dir, key, vkey, data, ledger=ledger, proof=proof)
    click.echo(cosigned.decode("utf-8"), nl=False)
    since = f"consistent with size {prev.size}" if prev else "first checkpoint seen"
    click.echo(f"cosigned ({since}); kept in {tlog.witness_log_dir(state_dir, tlog.cpf.log_origin(vkey.public_key))}",
               err=True)
