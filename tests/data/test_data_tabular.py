"""CSV / TSV / parquet tables with a column mapping, and RecBole atomic files."""
from __future__ import annotations

import pandas as pd
import pytest

from llmrec.data.tabular import atomic_items, load_atomic, load_table, read_atomic
from llmrec.errors import LlmrecError

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "2\t10\t4\t100\n1\t10\t3\t90\n1\t7\t5\t95\n")
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tSeven (Se7en)\t1995\tCrime Thriller\n7\tLand Before Time III (1995)\tV\tAnimation Children's\n"
        "3\tunused\t2000\tDrama\n")


def test_read_atomic_types():
    f = read_atomic(INTER.encode(), "x.inter")
    assert list(f.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert f["rating"].tolist() == [4.0, 3.0, 5.0]
    assert f["user_id"].tolist() == ["2", "1", "1"]


def test_atomic_items_title_year_and_text():
    items = atomic_items(read_atomic(ITEM.encode(), "x.item"), "x.item")
    assert items["title"].tolist() == ["Seven (Se7en) (1995)", "Land Before Time III (1995)", "unused (2000)"]
    assert items["text"].tolist() == ["Crime, Thriller", "Animation, Children's", "Drama"]


def test_load_atomic_with_sibling_item_file(tmp_path):
    (tmp_path / "d.inter").write_text(INTER)
    (tmp_path / "d.item").write_text(ITEM)
    ds = load_atomic(tmp_path / "d.inter")
    assert ds.raw_item_ids == ["7", "10"] and ds.raw_user_ids == ["1", "2"]
    assert ds.items["title"].tolist() == ["Land Before Time III (1995)", "Seven (Se7en) (1995)"]
    assert ds.interactions["timestamp"].tolist() == [100, 90, 95]


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("user_id\titem_id\n1\t2\n", "header field 'user_id' is not name:type"),
    ("user_id:token\titem_id:int\n1\t2\n", "header field 'item_id:int'"),
    ("user_id:token\titem_id:token\trating:float\n1\t2\t3\n4\t5\n", "line 3: expected 3 fields, found 2"),
    ("user_id:token\titem_id:token\n1\t2\n3\t4\t5\n", "line 3"),
    ("user_id:token\titem_id:token\trating:float\n1\t2\tgood\n", "line 2: field rating = 'good' is not a number"),
])
def test_read_atomic_errors(text, message):
    with pytest.raises(LlmrecError, match=message) as err:
        read_atomic(text.encode(), "bad.inter")
    assert str(err.value).startswith("bad.inter:") and "\n" not in str(err.value)


def test_atomic_missing_user_field(tmp_path):
    (tmp_path / "d.inter").write_text("uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(LlmrecError, match="no user_id field"):
        load_atomic(tmp_path / "d.inter")


def test_load_csv_with_mapping_and_item_file(tmp_path):
    (tmp_path / "r.csv").write_text("who,what,stars,when\nb,x,5,2001-06-01\na,y,2,2001-06-02\na,x,4,2001-06-03\n")
    (tmp_path / "i.tsv").write_text("id\tname\tgenre\tblurb\nx\tThe X\tDrama\tA tale.\ny\tThe Y\t\tTwo.\n")
    ds = load_table(tmp_path / "r.csv", user="who", item="what", rating="stars", timestamp="when",
                    items=tmp_path / "i.tsv", item_key="id", title="name", text=["genre", "blurb"])
    assert ds.raw_user_ids == ["a", "b"] and ds.raw_item_ids == ["x", "y"]
    assert ds.interactions["user_id"].tolist() == [2, 1, 1]
    assert ds.interactions["rating"].tolist() == [5.0, 2.0, 4.0]
    assert ds.interactions["timestamp"].tolist() == [991353600, 991440000, 991526400]
    assert ds.items["title"].tolist() == ["The X", "The Y"]
    assert ds.items["text"].tolist() == ["Drama. A tale.", "Two."]


def test_load_parquet_and_titles_from_interactions(tmp_path):
    pd.DataFrame({"user_id": [1, 2, 2], "item_id": [5, 5, 6], "title": ["Five", "Five", "Six"]}).to_parquet(
        tmp_path / "r.parquet")
    ds = load_table(tmp_path / "r.parquet", title="title")
    assert ds.items["title"].tolist() == ["Five", "Six"]
    assert ds.interactions["rating"].tolist() == [1.0, 1.0, 1.0]  # implicit


def test_table_errors(tmp_path):
    (tmp_path / "r.csv").write_text("user,item\n1,2\n")
    with pytest.raises(LlmrecError, match=r"r.csv: no column 'user_id' for the user id \(columns: user, item\)"):
        load_table(tmp_path / "r.csv")
    with pytest.raises(LlmrecError, match="no such file"):
        load_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LlmrecError, match="empty file"):
        load_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("user_id,item_id\n")
    with pytest.raises(LlmrecError, match="no interactions"):
        load_table(tmp_path / "header.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(LlmrecError, match="bad.parquet: cannot read"):
        load_table(tmp_path / "bad.parquet")
    (tmp_path / "rows.csv").write_text("user_id,item_id\n1,2\n1,2,3,4\n")
    with pytest.raises(LlmrecError, match="rows.csv: cannot read as a table"):
        load_table(tmp_path / "rows.csv")
