"""C2SP signed notes, checkpoints and cosignatures (`ledger.note`).

Known answers:
- golang.org/x/mod/sumdb/note (package doc and note_test.go): the PeterNeumann key and note.
  Ed25519 is deterministic, so `sign_note` must reproduce the published line byte for byte.
- A real cosigned checkpoint of the arche2025h1 staging CT log, cosigned (type 0x04) by the
  public witness remora.n621.de, as used in the tests of a public Python tlog client. The
  signed-note and tlog-* spec texts give no private or public key for their examples.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.keys import raw_public_key
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    SIG_TYPE_ED25519,
    Checkpoint,
    NoteError,
    NoteSignature,
    SignedNote,
    cosign,
    cosignature_message,
    note_key_hash,
    parse_signature_lines,
    parse_vkey,
    sign_note,
    verify_cosignature,
    verify_note,
    verify_note_signature,
    vkey,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n".encode()
)

ARCHE_VKEY = (
    "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
)
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
ARCHE_COSIGNED = """arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
""".encode()  # noqa: E501


def _go_private() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert seed[0] == SIG_TYPE_ED25519
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


LOG_KEY = _key(1)
LOG_NAME = "example.com/log"
WITNESS_KEY = _key(2)
WITNESS_NAME = "witness.example/w1"
CHECKPOINT = Checkpoint(LOG_NAME, 20852163, bytes(range(32)))


def _signed_checkpoint() -> SignedNote:
    body = CHECKPOINT.body()
    return SignedNote(body, (sign_note(body, LOG_NAME, LOG_KEY),))


# --- known answers ----------------------------------------------------------------------------


def test_go_sumdb_note_known_answer():
    name, public, sig_type = parse_vkey(GO_VKEY)
    assert (name, sig_type) == ("PeterNeumann", SIG_TYPE_ED25519)
    private = _go_private()
    assert raw_public_key(private.public_key()) == public
    assert vkey(name, public) == GO_VKEY
    assert note_key_hash(name, public).hex() == "c74f20a3"
    assert SignedNote(GO_TEXT, (sign_note(GO_TEXT, name, private),)).encode() == GO_NOTE
    note = SignedNote.parse(GO_NOTE)
    assert note.body == GO_TEXT
    assert verify_note(note, name, public) == note.signatures[0]


def test_real_witness_cosignature_known_answer():
    note = SignedNote.parse(ARCHE_COSIGNED)
    assert note.encode() == ARCHE_COSIGNED
    checkpoint = Checkpoint.parse_body(note.body)
    assert (checkpoint.origin, checkpoint.size) == (
        "arche2025h1.staging.ct.transparency.dev",
        1432088532,
    )
    log_name, log_public, _ = parse_vkey(ARCHE_VKEY)
    verify_note(note, log_name, log_public)  # the type 0x05 line of the same name is ignored
    w_name, w_public, w_type = parse_vkey(REMORA_VKEY)
    assert w_type == SIG_TYPE_COSIGNATURE
    (cosig,) = [s for s in note.signatures if s.name == w_name]
    assert verify_cosignature(note.body, cosig, w_name, w_public) == 1779573024
    altered = note.body.replace(b"1432088532", b"1432088533")
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(altered, cosig, w_name, w_public)


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_body_layout_and_round_trip():
    body = CHECKPOINT.body()
    root64 = base64.b64encode(bytes(range(32))).decode()
    assert body == f"example.com/log\n20852163\n{root64}\n".encode()
    assert Checkpoint.parse_body(body) == CHECKPOINT
    ext = Checkpoint("o", 0, b"\x00" * 32, ("ext one", "ext two"))
    assert ext.body().endswith(b"\next one\next two\n")
    assert Checkpoint.parse_body(ext.body()) == ext


@given(
    origin=st.text(
        st.characters(codec="utf-8", min_codepoint=0x21, exclude_characters="\n"), min_size=1
    ),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1), max_size=3
    ),
)
def test_checkpoint_round_trip_property(origin, size, root, extensions):
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse_body(cp.body()) == cp


ROOT64 = base64.b64encode(b"\x00" * 32).decode()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (f"o\n5\n{ROOT64}".encode(), "newline"),
        (f"o\n5\n{ROOT64}\n\n".encode(), "empty line"),
        (f"o\n5\n{ROOT64}\n\next\n".encode(), "empty line"),
        (b"o\n5\n", "at least 3"),
        (f"\n5\n{ROOT64}\n".encode(), "empty line"),
        (f"o\n05\n{ROOT64}\n".encode(), "canonical decimal"),
        (f"o\n+5\n{ROOT64}\n".encode(), "canonical decimal"),
        (f"o\n 5\n{ROOT64}\n".encode(), "canonical decimal"),
        (f"o\n\u0665\n{ROOT64}\n".encode(), "canonical decimal"),  # Arabic-Indic digit 5
        (f"o\n{2**64}\n{ROOT64}\n".encode(), "outside"),
        (b"o\n5\nAAAA\n", "root has 3 bytes"),
        (f"o\n5\n{ROOT64[:-1]}\n".encode(), "base64"),
        (f"o\n5\n{ROOT64[:-2]}B=\n".encode(), "canonical base64"),
        (f"o\r\n5\n{ROOT64}\n".encode(), "control character"),
        (b"o\xff\n5\n" + ROOT64.encode() + b"\n", "UTF-8"),
    ],
)
def test_checkpoint_parse_is_strict(body, match):
    with pytest.raises(NoteError, match=match):
        Checkpoint.parse_body(body)


@pytest.mark.parametrize(
    "fields",
    [
        ("", 1, bytes(32), ()),
        ("o\nx", 1, bytes(32), ()),
        ("o\ud800", 1, bytes(32), ()),
        ("o", -1, bytes(32), ()),
        ("o", 1, bytes(31), ()),
        ("o", 1, bytes(32), ("",)),
        ("o", 1, bytes(32), ("a\nb",)),
        ("o", 1, bytes(32), ("\ud800",)),
    ],
)
def test_checkpoint_constructor_refuses_what_cannot_be_encoded(fields):
    with pytest.raises(NoteError):
        Checkpoint(*fields)


# --- signed notes -----------------------------------------------------------------------------


def test_signed_note_round_trip_with_several_signatures():
    note = _signed_checkpoint().with_signatures(
        cosign(CHECKPOINT.body(), WITNESS_NAME, WITNESS_KEY, 1679315147)
    )
    encoded = note.encode()
    assert encoded.count("\n— ".encode()) == 2
    assert SignedNote.parse(encoded) == note


@given(
    text=st.lists(
        st.text(st.characters(codec="utf-8", min_codepoint=0x20), max_size=20), min_size=1
    ),
    names=st.lists(
        st.text(
            st.characters(codec="utf-8", min_codepoint=0x21, exclude_characters="+"),
            min_size=1,
            max_size=10,
        ).filter(lambda n: not any(c.isspace() for c in n)),
        min_size=1,
        max_size=4,
    ),
    raw=st.binary(min_size=1, max_size=80),
)
def test_signed_note_round_trip_property(text, names, raw):
    body = "".join(line + "\n" for line in text).encode()
    sigs = tuple(NoteSignature(n, raw[:4].ljust(4, b"\0"), raw) for n in names)
    note = SignedNote(body, sigs)
    assert SignedNote.parse(note.encode()) == note


def test_note_text_may_contain_blank_lines_the_last_one_separates():
    body = b"first\n\nsecond\n"
    note = SignedNote(body, (sign_note(body, LOG_NAME, LOG_KEY),))
    assert SignedNote.parse(note.encode()).body == body


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"text\n" + "— a AAAAAAA=\n".encode(), "no blank line"),
        (b"text\n\n", "empty"),
        (b"text\n\n" + "— a AAAAAAA=".encode(), "newline"),
        (b"text\n\n" + "— a AAAAAAA=\n\n".encode(), "empty"),
        (b"text\n\n" + b"- a AAAAAAA=\n", "em dash"),
        (b"text\n\n" + "—a AAAAAAA=\n".encode(), "em dash"),
        (b"text\n\n" + "— aAAAAAAA=\n".encode(), "no space"),
        (b"text\n\n" + "— a  AAAAAAA=\n".encode(), "base64"),
        (b"text\n\n" + "— a+b AAAAAAA=\n".encode(), "forbidden"),
        (b"text\n\n" + "— a\u00a0b AAAAAAA=\n".encode(), "forbidden"),
        (b"text\n\n" + "— a AAAAAA==\n".encode(), "more than 4"),
        (b"text\n\n" + "— a AAAAAAB=\n".encode(), "canonical"),
        (b"text\n\n" + "— a AAAAAAA\n".encode(), "base64"),
        (b"te\xc3\x28xt\n\n" + "— a AAAAAAA=\n".encode(), "UTF-8"),
        (b"te\x00xt\n\n" + "— a AAAAAAA=\n".encode(), "control"),
        (b"text\r\n\n" + "— a AAAAAAA=\n".encode(), "control"),
        (b"text\n\n" + "— a AAAAAAA=\n".encode() * 101, "limit"),
    ],
)
def test_signed_note_parse_is_strict(data, match):
    with pytest.raises(NoteError, match=match):
        SignedNote.parse(data)


def test_a_note_needs_a_signature_and_a_final_newline():
    sig = NoteSignature("a", b"\0" * 4, b"\0")
    with pytest.raises(NoteError, match="at least one"):
        SignedNote(b"text\n", ())
    with pytest.raises(NoteError, match="newline"):
        SignedNote(b"text", (sig,))
    with pytest.raises(NoteError, match="newline"):
        sign_note(b"text", LOG_NAME, LOG_KEY)


def test_every_single_byte_change_of_a_signed_note_fails():
    """Flip each byte three ways: the note no longer parses, or no longer verifies."""
    encoded = _signed_checkpoint().encode()
    public = raw_public_key(LOG_KEY.public_key())
    for i in range(len(encoded)):
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(encoded)
            data[i] ^= mask
            try:
                note = SignedNote.parse(bytes(data))
                verify_note(note, LOG_NAME, public)
            except NoteError:
                continue
            pytest.fail(f"byte {i} ^ {mask:#x} went undetected")


def test_every_single_byte_change_of_a_cosigned_checkpoint_fails():
    cosig = cosign(CHECKPOINT.body(), WITNESS_NAME, WITNESS_KEY, 1679315147)
    encoded = _signed_checkpoint().with_signatures(cosig).encode()
    public = raw_public_key(WITNESS_KEY.public_key())
    log_line = _signed_checkpoint().signatures[0].line()
    start, end = encoded.index(log_line), encoded.index(log_line) + len(log_line)
    for i in range(len(encoded)):
        if start <= i < end:
            continue  # the log's own signature line is not covered by the cosignature
        for mask in (0x01, 0x80, 0xFF):
            data = bytearray(encoded)
            data[i] ^= mask
            try:
                note = SignedNote.parse(bytes(data))
                for sig in note.signatures:
                    if sig.name == WITNESS_NAME:
                        verify_cosignature(note.body, sig, WITNESS_NAME, public)
                        break
                else:
                    raise NoteError("no cosignature")
            except NoteError:
                continue
            pytest.fail(f"byte {i} ^ {mask:#x} went undetected")


# --- signatures and keys ----------------------------------------------------------------------


def test_note_signature_checks_name_key_hash_and_bytes():
    body = CHECKPOINT.body()
    sig = sign_note(body, LOG_NAME, LOG_KEY)
    public = raw_public_key(LOG_KEY.public_key())
    other = raw_public_key(_key(9).public_key())
    assert sig.key_hash == note_key_hash(LOG_NAME, public, SIG_TYPE_ED25519)
    assert verify_note_signature(body, sig, LOG_NAME, public)
    assert not verify_note_signature(body + b"x\n", sig, LOG_NAME, public)
    assert not verify_note_signature(body, sig, "example.com/other", public)
    assert not verify_note_signature(body, sig, LOG_NAME, other)
    wrong_hash = NoteSignature(LOG_NAME, b"\0\0\0\0", sig.signature)
    assert not verify_note_signature(body, wrong_hash, LOG_NAME, public)
    short = NoteSignature(LOG_NAME, sig.key_hash, sig.signature[:-1])
    assert not verify_note_signature(body, short, LOG_NAME, public)
    with pytest.raises(NoteError, match="32"):
        verify_note_signature(body, sig, LOG_NAME, public[:-1])


def test_verify_note_ignores_unknown_keys_and_rejects_a_bad_known_one():
    body = CHECKPOINT.body()
    public = raw_public_key(LOG_KEY.public_key())
    good = sign_note(body, LOG_NAME, LOG_KEY)
    impostor = sign_note(body, LOG_NAME, _key(9))  # same name, other key hash: ignored
    stranger = sign_note(body, "someone.else", _key(9))
    note = SignedNote(body, (stranger, impostor, good))
    assert verify_note(note, LOG_NAME, public) == good
    with pytest.raises(NoteError, match="not signed by"):
        verify_note(SignedNote(body, (stranger, impostor)), LOG_NAME, public)
    forged = NoteSignature(LOG_NAME, good.key_hash, bytes(64))
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(SignedNote(body, (good, forged)), LOG_NAME, public)


def test_cosignature_wire_format_and_message():
    body = CHECKPOINT.body()
    sig = cosign(body, WITNESS_NAME, WITNESS_KEY, 1679315147)
    public = raw_public_key(WITNESS_KEY.public_key())
    assert sig.key_hash == note_key_hash(WITNESS_NAME, public, SIG_TYPE_COSIGNATURE)
    assert len(sig.signature) == 72
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    message = cosignature_message(body, 1679315147)
    assert message == b"cosignature/v1\ntime 1679315147\n" + body
    WITNESS_KEY.public_key().verify(sig.signature[8:], message)
    assert verify_cosignature(body, sig, WITNESS_NAME, public) == 1679315147


def test_cosignature_rejections():
    body = CHECKPOINT.body()
    sig = cosign(body, WITNESS_NAME, WITNESS_KEY, 1679315147)
    public = raw_public_key(WITNESS_KEY.public_key())
    with pytest.raises(NoteError, match="not by cosigner"):
        verify_cosignature(body, sig, "witness.example/w2", public)
    with pytest.raises(NoteError, match="not by cosigner"):
        verify_cosignature(body, sig, WITNESS_NAME, raw_public_key(_key(9).public_key()))
    with pytest.raises(NoteError, match="not by cosigner"):  # a type 0x01 signature
        verify_cosignature(body, sign_note(body, WITNESS_NAME, WITNESS_KEY), WITNESS_NAME, public)
    restamped = NoteSignature(
        WITNESS_NAME, sig.key_hash, (1679315148).to_bytes(8, "big") + sig.signature[8:]
    )
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(body, restamped, WITNESS_NAME, public)
    huge = NoteSignature(WITNESS_NAME, sig.key_hash, b"\xff" * 8 + sig.signature[8:])
    with pytest.raises(NoteError, match="exceeds"):
        verify_cosignature(body, huge, WITNESS_NAME, public)
    with pytest.raises(NoteError, match="72"):
        verify_cosignature(
            body,
            NoteSignature(WITNESS_NAME, sig.key_hash, sig.signature[:-1]),
            WITNESS_NAME,
            public,
        )
    with pytest.raises(NoteError, match="outside"):
        cosign(body, WITNESS_NAME, WITNESS_KEY, 2**63)
    with pytest.raises(NoteError):
        cosign(b"not a checkpoint\n", WITNESS_NAME, WITNESS_KEY, 1)


def test_vkey_round_trip_and_rejections():
    public = raw_public_key(WITNESS_KEY.public_key())
    text = vkey(WITNESS_NAME, public, SIG_TYPE_COSIGNATURE)
    assert parse_vkey(text) == (WITNESS_NAME, public, SIG_TYPE_COSIGNATURE)
    assert parse_vkey(REMORA_VKEY)[2] == SIG_TYPE_COSIGNATURE
    name, hash_hex, key = text.split("+", 2)
    assert parse_vkey(f"{name}+{hash_hex.upper()}+{key}")[0] == name
    bad = [
        f"{name}+{hash_hex}",
        f"{name}+00000000+{key}",
        f"{name}+{hash_hex[:-1]}+{key}",
        f"other+{hash_hex}+{key}",
        f"+{hash_hex}+{key}",
        f"{name}+{hash_hex}+{key[:-4]}",
        f"{name}+{hash_hex}+" + base64.b64encode(b"\x02" + public).decode(),
        vkey(WITNESS_NAME, public + b"\0", SIG_TYPE_COSIGNATURE),
    ]
    for b in bad:
        with pytest.raises(NoteError):
            parse_vkey(b)


def test_signature_lines_block():
    sig = cosign(CHECKPOINT.body(), WITNESS_NAME, WITNESS_KEY, 7)
    block = sig.line() + sig.line()
    assert parse_signature_lines(block) == (sig, sig)
    for bad in (b"", sig.line()[:-1], b"\n", sig.line() + b"\n"):
        with pytest.raises(NoteError):
            parse_signature_lines(bad)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u3000b", "a\nb", "a\ud800"])
def test_bad_key_names(name):
    with pytest.raises(NoteError):
        note_key_hash(name, b"\0" * 32)
    with pytest.raises(NoteError):
        NoteSignature(name, b"\0" * 4, b"\0")
