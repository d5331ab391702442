"""Every file reader, fed random bytes and truncated or bit-flipped valid files: it returns, or it raises
LlmrecError with a one-line message; never another exception (the CLI would print a traceback)."""
from __future__ import annotations

import gzip
import io
import json
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmrec.data.amazon import load_amazon
from llmrec.data.build import make_dataset
from llmrec.data.collm import load_collm
from llmrec.data.lcrec_format import load_lcrec, read_lcrec_index
from llmrec.data.registry import read_processed, write_processed
from llmrec.data.sequences import load_sequences
from llmrec.data.tabular import load_atomic, load_table
from llmrec.errors import LlmrecError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def one_line_or_nothing(read):
    try:
        read()
    except LlmrecError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message


def variants(valid: bytes):
    """Random bytes, a truncation of the valid file, or the valid file with one byte changed."""
    n = len(valid)
    return st.one_of(
        st.binary(max_size=400),
        st.integers(0, n).map(lambda k: valid[:k]),
        st.tuples(st.integers(0, max(n - 1, 0)), st.integers(1, 255)).map(
            lambda t: valid[:t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1:] if n else valid),
    )


def in_file(name: str, data: bytes, read, extra: dict[str, bytes] | None = None):
    """Write `data` as `name` (and `extra` files beside it) in a fresh folder, then check `read(folder / name)`."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / name).write_bytes(data)
        for other, body in (extra or {}).items():
            (folder / other).write_bytes(body)
        one_line_or_nothing(lambda: read(folder / name))


# -- valid seeds ---------------------------------------------------------------------------------------------------

CSV = b"user_id,item_id,rating,timestamp,title\n1,10,5,978300760,Toy Story\n1,11,3,978300761,Heat\n2,10,4,2001-01-02,\n"
TSV = CSV.replace(b",", b"\t")
_frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"], "rating": [5.0, 3.0, 4.0],
                       "timestamp": [1, 2, 3]})
_buf = io.BytesIO()
_frame.to_parquet(_buf, index=False)
PARQUET = _buf.getvalue()
INTER = b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n22\t242\t1\t878887116\n"
ITEM = b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy Drama\n"
REVIEWS = (b'{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1380000000}\n'
           b'{"reviewerID": "A2", "asin": "B1", "overall": 3.0, "unixReviewTime": 1380000001}\n')
META = (b"{'asin': 'B1', 'title': 'A &amp; B', 'categories': [['Books', 'Fiction']], 'description': '<b>x</b>'}\n"
        b'{"asin": "B2", "title": "C", "category": ["Books"], "description": ["y"], "brand": "Z"}\n')
LC_INTER = json.dumps({"0": [0, 1, 2], "1": [2, 1], "2": [0, 2]}).encode()
LC_ITEM = json.dumps({"0": {"title": "Capo", "description": "d"}, "1": {"title": "Strap"}, "2": {}}).encode()
LC_INDEX = json.dumps({str(i): [f"<a_{i}>", f"<b_{i % 2}>"] for i in range(3)}).encode()
SEQ = b"1 5 3 9\n2 3\n3 9 5 5\n"


def collm_pickle(seed: int = 0, protocol: int = 4) -> bytes:
    rng = np.random.default_rng(seed)
    iid = rng.integers(1, 6, 4)
    df = pd.DataFrame({"uid": [1, 2, 3, 4], "iid": iid, "label": [1, 0, 1, 1], "timestamp": [10, 11, 12, 13],
                       "his": [np.array([0]), [0, 1], np.array([0, 2, 3]), [0]], "title": [f"T{i}" for i in iid],
                       "his_title": [[""], ["", "T1"], ["", "T2", "T3"], [""]]})
    return pickle.dumps(df, protocol=protocol)


PARTS = ("train", "valid", "valid_small", "test")
PICKLES = {f"{p}_ood2.pkl": collm_pickle(k) for k, p in enumerate(PARTS)}
_zbuf = io.BytesIO()
with zipfile.ZipFile(_zbuf, "w", zipfile.ZIP_DEFLATED) as _z:
    for _name, _body in PICKLES.items():
        _z.writestr(f"ml-1m/{_name}", _body)
COLLM_ZIP = _zbuf.getvalue()


# -- tables ----------------------------------------------------------------------------------------------------------

@FUZZ
@given(variants(CSV))
def test_csv(data):
    in_file("r.csv", data, lambda p: load_table(p, rating="rating", timestamp="timestamp", title="title"))


@FUZZ
@given(variants(TSV))
def test_tsv(data):
    in_file("r.tsv", data, lambda p: load_table(p, rating="rating", timestamp="timestamp"))


@FUZZ
@given(variants(PARQUET))
def test_parquet(data):
    in_file("r.parquet", data, lambda p: load_table(p, rating="rating", timestamp="timestamp"))


@FUZZ
@given(variants(INTER), st.sampled_from([None, ITEM]))
@example(b"user_id:token\titem_id:token\n1\t\xc2\xb2\n", None)  # '²'.isdigit() but int() refuses it
def test_recbole_atomic(data, item):
    in_file("x.inter", data, load_atomic, {"x.item": item} if item else None)


@FUZZ
@given(variants(ITEM))
def test_recbole_item_file(data):
    in_file("x.item", data, lambda p: load_atomic(p.with_name("x.inter"), p), {"x.inter": INTER})


# -- Amazon ----------------------------------------------------------------------------------------------------------

@FUZZ
@given(variants(REVIEWS), st.sampled_from(["r.jsonl", "r.json"]))
def test_amazon_reviews(data, name):
    in_file(name, data, load_amazon)


@FUZZ
@given(variants(gzip.compress(REVIEWS)))
def test_amazon_reviews_gz(data):
    in_file("r.json.gz", data, load_amazon)


@FUZZ
@given(variants(META), st.booleans())
def test_amazon_meta(data, gz):
    in_file("meta.json.gz" if gz else "meta.json", gzip.compress(data) if gz else data,
            lambda p: load_amazon(p.with_name("r.jsonl"), p), {"r.jsonl": REVIEWS})


@FUZZ
@given(variants(gzip.compress(META)))
def test_amazon_meta_gz_bytes(data):
    in_file("meta.json.gz", data, lambda p: load_amazon(p.with_name("r.jsonl"), p), {"r.jsonl": REVIEWS})


# -- LC-Rec ----------------------------------------------------------------------------------------------------------

@FUZZ
@given(variants(LC_INTER))
def test_lcrec_inter(data):
    in_file("Toys.inter.json", data, load_lcrec, {"Toys.item.json": LC_ITEM})


@FUZZ
@given(variants(LC_ITEM))
def test_lcrec_item(data):
    in_file("Toys.item.json", data, lambda p: load_lcrec(p.parent), {"Toys.inter.json": LC_INTER})


@FUZZ
@given(variants(LC_INDEX))
def test_lcrec_index(data):
    from llmrec.methods.lcrec.recipe import index_from_file

    def read(p):
        ds = load_lcrec(p.parent)
        read_lcrec_index(p.parent, ds)
        index_from_file(p, ds.n_items, ds.raw_item_ids)
    in_file("Toys.index.json", data, read, {"Toys.inter.json": LC_INTER})


# -- CoLLM pickles ---------------------------------------------------------------------------------------------------

@FUZZ
@given(variants(COLLM_ZIP))
def test_collm_zip(data):
    in_file("collm.zip", data, load_collm)


@FUZZ
@given(variants(PICKLES["test_ood2.pkl"]), st.sampled_from(PARTS))
def test_collm_pickle(data, part):
    others = {n: b for n, b in PICKLES.items() if n != f"{part}_ood2.pkl"}
    in_file(f"{part}_ood2.pkl", data, lambda p: load_collm(p.parent), others)


@FUZZ
@given(variants(collm_pickle(0, protocol=2)))
def test_collm_pickle_protocol_2(data):
    others = {n: b for n, b in PICKLES.items() if n != "test_ood2.pkl"}
    in_file("test_ood2.pkl", data, lambda p: load_collm(p.parent), others)


# -- sequence files --------------------------------------------------------------------------------------------------

@FUZZ
@given(variants(SEQ))
def test_sequence_file(data):
    in_file("Beauty.seq", data, load_sequences)


# -- processed-data cache --------------------------------------------------------------------------------------------

def _cache_files() -> dict[str, bytes]:
    ds = make_dataset("t", pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]}),
                      pd.DataFrame({"item": ["a"], "title": ["A"], "text": [""]}), "t")
    with tempfile.TemporaryDirectory() as d:
        write_processed(ds, Path(d) / "c", {"source": "csv"})
        return {p.name: p.read_bytes() for p in (Path(d) / "c").iterdir()}


CACHE = _cache_files()


@FUZZ
@given(st.sampled_from(sorted(CACHE)), st.data())
def test_processed_cache(name, data):
    damaged = data.draw(variants(CACHE[name]))
    others = {n: b for n, b in CACHE.items() if n != name}
    in_file(name, damaged, lambda p: read_processed(p.parent), others)
