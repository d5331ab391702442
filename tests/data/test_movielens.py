"""ml-1m / ml-20m from a local server with the GroupLens layout; broken downloads leave nothing behind."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from llmrec.data import movielens
from llmrec.data.download import download
from llmrec.data.registry import load_dataset
from llmrec.errors import LlmrecError

RATINGS_DAT = "2::20::5::978300760\n1::10::3::978302109\n1::20::4::978301968\n"
MOVIES_DAT = ("10::GoldenEye (1995)::Action|Adventure|Thriller\n20::Amélie (2001)::Comedy|Romance\n"
              "30::Unrated (2000)::Drama\n")


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
    return buf.getvalue()


def serve(server, monkeypatch, name: str, body: bytes, pin: bool = True):
    archive = movielens.ARCHIVES[name]
    server.files[archive.file] = body
    monkeypatch.setitem(movielens.ARCHIVES, name,
                        movielens.Archive(archive.file, hashlib.md5(body).hexdigest() if pin else archive.md5))


def ml1m_zip() -> bytes:
    return zip_bytes({"ml-1m/ratings.dat": RATINGS_DAT.encode("latin-1"),
                      "ml-1m/movies.dat": MOVIES_DAT.encode("latin-1"), "ml-1m/users.dat": b"1::F::1::10::48067\n"})


def test_ml1m(archive_server, monkeypatch, llmrec_home):
    serve(archive_server, monkeypatch, "ml-1m", ml1m_zip())
    ds = load_dataset("ml-1m")
    assert ds.raw_user_ids == ["1", "2"] and ds.raw_item_ids == ["10", "20"]  # movie 30 was never rated
    assert ds.interactions["user_id"].tolist() == [2, 1, 1]
    assert ds.interactions["timestamp"].tolist() == [978300760, 978302109, 978301968]
    assert ds.items["title"].tolist() == ["GoldenEye (1995)", "Amélie (2001)"]
    assert ds.items["text"].tolist() == ["Action, Adventure, Thriller", "Comedy, Romance"]
    assert (llmrec_home / "raw" / "ml-1m.zip").exists()
    load_dataset("ml-1m", refresh=True)
    assert archive_server.requests == ["ml-1m.zip"]  # the raw archive is reused


def test_ml20m(archive_server, monkeypatch):
    body = zip_bytes({
        "ml-20m/ratings.csv": b"userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,4.0,1112484676\n"
                              b"3,2,0.5,1112484819\n",
        "ml-20m/movies.csv": b'movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n'
                             b'29,"City of Lost Children, The (Cit\xc3\xa9 des enfants perdus, La) (1995)",'
                             b'(no genres listed)\n'})
    serve(archive_server, monkeypatch, "ml-20m", body)
    ds = load_dataset("ml-20m")
    assert ds.interactions["rating"].tolist() == [3.5, 4.0, 0.5]
    assert ds.items["title"].tolist() == ["Jumanji (1995)",
                                          "City of Lost Children, The (Cité des enfants perdus, La) (1995)"]
    assert ds.items["text"].tolist() == ["Adventure, Children, Fantasy", ""]


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_truncated_download_leaves_nothing(archive_server, monkeypatch, llmrec_home):
    serve(archive_server, monkeypatch, "ml-1m", ml1m_zip())
    archive_server.truncate.add("ml-1m.zip")
    with pytest.raises(LlmrecError) as err:
        load_dataset("ml-1m")
    message = str(err.value)
    assert "ml-1m.zip" in message and ("truncated" in message or "interrupted" in message)
    assert "\n" not in message
    assert _leftovers(llmrec_home / "raw") == []
    assert _leftovers(llmrec_home / "processed") == []


def test_corrupt_download_leaves_nothing(archive_server, monkeypatch, llmrec_home):
    serve(archive_server, monkeypatch, "ml-1m", ml1m_zip(), pin=False)  # served bytes != the official md5
    with pytest.raises(LlmrecError, match=r"ml-1m.zip: md5 checksum mismatch"):
        load_dataset("ml-1m")
    assert _leftovers(llmrec_home / "raw") == []


def test_missing_archive_and_bad_zip(archive_server, monkeypatch, llmrec_home, tmp_path):
    with pytest.raises(LlmrecError, match="download failed"):
        load_dataset("ml-1m")  # the server has no such file: 404
    monkeypatch.setitem(movielens.ARCHIVES, "ml-1m", movielens.Archive("ml-1m.zip", None))
    archive_server.files["ml-1m.zip"] = b"this is not a zip"
    with pytest.warns(UserWarning, match="no checksum pinned"):
        with pytest.raises(LlmrecError, match="corrupt zip archive"):
            load_dataset("ml-1m")
    assert _leftovers(llmrec_home / "raw") == []  # removed, so the next run downloads again


def test_malformed_member(archive_server, monkeypatch, llmrec_home):
    body = zip_bytes({"ml-1m/ratings.dat": b"1::10::3::978302109\n1::20\n", "ml-1m/movies.dat": MOVIES_DAT.encode()})
    serve(archive_server, monkeypatch, "ml-1m", body)
    with pytest.raises(LlmrecError, match=r"ratings.dat: line 2: expected 4 fields, found 2"):
        load_dataset("ml-1m")
    body = zip_bytes({"ml-1m/ratings.dat": RATINGS_DAT.encode()})
    (llmrec_home / "raw" / "ml-1m.zip").unlink()
    serve(archive_server, monkeypatch, "ml-1m", body)
    with pytest.raises(LlmrecError, match="no movies.dat inside"):
        load_dataset("ml-1m")


def archive_server_url(server):
    return f"http://127.0.0.1:{server.server_address[1]}/movielens"


def test_download_is_idempotent(archive_server, tmp_path):
    archive_server.files["f.bin"] = b"abc"
    url = archive_server_url(archive_server) + "/f.bin"
    dest = download(url, tmp_path / "f.bin", md5=hashlib.md5(b"abc").hexdigest(),
                    sha256=hashlib.sha256(b"abc").hexdigest())
    assert dest.read_bytes() == b"abc"
    download(url, dest, md5="0" * 32)  # already there: not fetched again
    assert archive_server.requests == ["f.bin"]
