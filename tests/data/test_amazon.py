"""Amazon reviews: 2014 (Python-literal metadata) and 2018 (JSON, gzip) dumps, cleaning, k-core, errors."""
from __future__ import annotations

import gzip
import json

import pytest

from llmrec.data.amazon import _reviews_arrow, clean_text, load_amazon, read_reviews
from llmrec.data.registry import load_dataset
from llmrec.errors import LlmrecError


def review(user, asin, rating, t, **extra):
    return {"reviewerID": user, "asin": asin, "overall": rating, "unixReviewTime": t, "reviewText": "ok", **extra}


REVIEWS = [review("A1", "B2", 5.0, 100), review("A2", "B1", 3.0, 90), review("A1", "B1", 4.0, 95),
           review("A1", "B2", 5.0, 100)]  # the last one duplicates the first, as the dumps do


def write_lines(path, records, gz=False, literal=False):
    text = "\n".join(repr(r) if literal else json.dumps(r) for r in records) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_2014_python_literal_meta(tmp_path):
    reviews = write_lines(tmp_path / "reviews_Books_5.json", REVIEWS)
    meta = write_lines(tmp_path / "meta_Books.json", [
        {"asin": "B1", "title": "Dune &amp; Sons", "description": "<b>Sand</b> and <i>spice</i>.",
         "categories": [["Books", "Science Fiction"], ["Books", "Classics"]]},
        {"asin": "B2", "description": "No title here", "brand": "Acme"},
        {"asin": "B9", "title": "Never reviewed"},
    ], literal=True)
    ds = load_amazon(reviews, meta)
    assert ds.raw_user_ids == ["A1", "A2"] and ds.raw_item_ids == ["B1", "B2"]
    assert len(ds.interactions) == 3
    assert ds.items["title"].tolist() == ["Dune & Sons", ""]
    assert ds.items["text"].tolist() == ["Sand and spice. Categories: Books, Science Fiction, Classics.",
                                         "No title here Brand: Acme."]


def test_2018_gzip_json(tmp_path):
    reviews = write_lines(tmp_path / "Musical_Instruments_5.json.gz",
                          [review("U1", "I1", 5.0, 1, style={"Color:": " Red"}, verified=True),
                           review("U2", "I1", 2.0, 2), review("U1", "I2", 4.0, 3)], gz=True)
    meta = write_lines(tmp_path / "meta_Musical_Instruments.json.gz", [
        {"asin": "I1", "title": "Strings &lt;3", "description": ["Bright", "<br>Loud"], "brand": "Fender",
         "category": ["Musical Instruments", "Guitars"]},
        {"asin": "I2", "title": "Pick", "description": [], "category": []},
    ], gz=True)
    ds = load_dataset("amazon", reviews=str(reviews), meta=str(meta))
    assert ds.items["title"].tolist() == ["Strings <3", "Pick"]
    assert ds.items["text"].tolist() == ["Bright Loud Brand: Fender. Categories: Musical Instruments, Guitars.", ""]
    assert ds.interactions["rating"].tolist() == [5.0, 2.0, 4.0]
    # a path with a .json.gz suffix resolves to the amazon source
    assert load_dataset(str(reviews)).interactions.equals(load_dataset("amazon", reviews=str(reviews)).interactions)


def test_clean_text():
    assert clean_text("A &amp;lt;b&amp;gt; <a href='x'>link</a>\n  text") == "A link text"
    assert clean_text(["x", ["<p>y</p>", None]]) == "x y"
    assert clean_text(None) == ""


def test_kcore(tmp_path):
    rows = [review(f"U{u}", f"I{i}", 5.0, u * 10 + i) for u in range(4) for i in range(3)]
    rows += [review("LONE", "I0", 1.0, 1), review("U0", "RARE", 1.0, 2)]
    path = write_lines(tmp_path / "r.json", rows)
    assert len(load_amazon(path).interactions) == 14
    ds = load_amazon(path, kcore=3)
    assert "LONE" not in ds.raw_user_ids and "RARE" not in ds.raw_item_ids
    assert len(ds.interactions) == 12
    with pytest.raises(LlmrecError, match="no reviews left after the 50-core filter"):
        load_amazon(path, kcore=50)


def test_literal_review_lines_and_json_array(tmp_path):
    lit = write_lines(tmp_path / "lit.json", REVIEWS, literal=True)
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(REVIEWS))
    strict = write_lines(tmp_path / "j.json", REVIEWS)
    assert _reviews_arrow(strict) is not None and _reviews_arrow(lit) is None  # fast path only for strict JSON
    assert read_reviews(lit).equals(read_reviews(strict))
    assert read_reviews(arr).equals(read_reviews(lit))


def test_bad_files(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(REVIEWS[0]) + "\n{not json\n")
    with pytest.raises(LlmrecError, match=r"r.json:2: not a JSON object or a Python dict literal"):
        load_amazon(path)
    path.write_text(json.dumps(REVIEWS[0]) + "\n" + json.dumps({"reviewerID": "A", "asin": "B"}) + "\n")
    with pytest.raises(LlmrecError, match=r"r.json:2: missing field 'overall'"):
        load_amazon(path)
    path.write_text("")
    with pytest.raises(LlmrecError, match="no reviews"):
        load_amazon(path)
    gz = write_lines(tmp_path / "r.json.gz", REVIEWS * 200, gz=True)
    gz.write_bytes(gz.read_bytes()[:-30])  # truncated download
    with pytest.raises(LlmrecError, match="r.json.gz: cannot read"):
        load_amazon(gz)
    with pytest.raises(LlmrecError, match="no such file"):
        load_amazon(tmp_path / "missing.json")
    meta = tmp_path / "m.json"
    meta.write_text("{'title': 'no asin'}\n")
    with pytest.raises(LlmrecError, match=r"m.json:1: missing field 'asin'"):
        load_amazon(write_lines(tmp_path / "ok.json", REVIEWS), meta)
