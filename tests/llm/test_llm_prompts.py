"""Prompt templates (official wording) and tokenisation with explicit slot positions."""
from __future__ import annotations

import pytest

from llmrec.errors import LlmrecError
from llmrec.llm.prompts import (EMBED, MAX_TITLES, PromptBuilder, build_prompt, format_titles, load_template,
                                parse_template, template_for)

# First line of the official files (zyang1580/CoLLM prompts/*.txt), copied verbatim; "\\n" is backslash + n.
OFFICIAL = {
    "text_movie": '#Question: A user has given high ratings to the following movies: <ItemTitleList>. Leverage the '
                  'information to predict whether the user would enjoy the movie titled <TargetItemTitle>? Answer '
                  'with "Yes" or "No". \\n#Answer:',
    "id_movie": "#Question: A user has given high ratings to the following movies: <ItemTitleList>. Additionally, "
                "we have information about the user's preferences encoded in the feature <UserID>. Using all "
                "available information, make a prediction about whether the user would enjoy the movie titled "
                '<TargetItemTitle> with the feature <TargetItemID>? Answer with "Yes" or "No". \\n#Answer:',
    "text_book": '#Question: A user has given high ratings to the following books: <ItemTitleList>. Leverage the '
                 'information to predict whether the user would enjoy the book titled <TargetItemTitle>? Answer '
                 'with "Yes" or "No". \\n#Answer:',
    "id_book": "#Question: A user has given high ratings to the following books: <ItemTitleList>. Additionally, "
               "we have information about the user's preferences encoded in the feature <UserID>. Using all "
               "available information, make a prediction about whether the user would enjoy the book titled "
               '<TargetItemTitle> with the feature <TargetItemID>? Answer with "Yes" or "No". \\n#Answer:',
}
TITLES = [f"Movie {c} ({1980 + i})" for i, c in enumerate("ABCDEFGHIJKL")]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_packaged_templates_are_the_official_wording(name):
    t = load_template(name)
    assert t.text == OFFICIAL[name]
    assert "\\n#Answer:" in t.text and "\n" not in t.text


def test_ids_only_template_has_no_titles():
    for domain in ("movie", "book"):
        t = template_for("ids_only", domain)
        assert t.has("<UserID>") and t.has("<TargetItemID>")
        assert not t.has("<ItemTitleList>") and not t.has("<TargetItemTitle>")
        assert t.text.endswith('Answer with "Yes" or "No". \\n#Answer:')


def test_other_domains_derive_from_movie_wording():
    t = template_for("id", "game")
    assert t.text == OFFICIAL["id_movie"].replace("movies", "games").replace("movie", "game")
    assert template_for("text", "book").text == OFFICIAL["text_book"]  # the packaged file wins


def test_template_file_errors(tmp_path):
    repeated = tmp_path / "official_style.txt"
    repeated.write_text((OFFICIAL["text_movie"] + "\n") * 4)  # the official files repeat the prompt
    assert load_template(repeated).text == OFFICIAL["text_movie"]
    two = tmp_path / "two.txt"
    two.write_text(OFFICIAL["text_movie"] + "\n" + OFFICIAL["id_movie"] + "\n")
    with pytest.raises(LlmrecError, match="2 different lines"):
        load_template(two)
    with pytest.raises(LlmrecError, match="unknown placeholder.*<ItemIDList>"):
        parse_template("#Question: <ItemIDList> <TargetItemTitle>")
    with pytest.raises(LlmrecError, match="no target item"):
        parse_template("#Question: <ItemTitleList> \\n#Answer:")
    with pytest.raises(LlmrecError, match="not found"):
        load_template("no_such_template")
    with pytest.raises(LlmrecError, match="kind"):
        template_for("idd")


def test_text_prompt_is_exactly_the_official_string(tiny):
    _, tok = tiny
    p = build_prompt("text_movie", TITLES, "Heat (1995)", None, None, tok)
    last10 = ", ".join(f'"{t}"' for t in TITLES[-10:])
    expected = OFFICIAL["text_movie"].replace("<ItemTitleList>", last10).replace("<TargetItemTitle>", '"Heat (1995)"')
    assert tok.decode(p.input_ids, skip_special_tokens=True) == expected
    assert p.n_titles == MAX_TITLES == 10
    assert format_titles(["A", " ", "B "]) == '"A", "B"'


def test_segments_tokenise_like_the_whole_text(any_tokenizer):
    tok = any_tokenizer
    b = PromptBuilder("id_movie", tok)
    p = b.build(TITLES[:5], "L.A. Confidential (1997)", "01011100", "192.168.122.234")
    text = tok.decode(p.input_ids, skip_special_tokens=True)
    assert "feature 01011100. Using" in text and 'titled "L.A. Confidential (1997)" with the feature 192.168' in text
    assert list(tok(text)["input_ids"]) == list(p.input_ids)


def test_text_slot_spans(any_tokenizer):
    tok = any_tokenizer
    p = build_prompt("id_movie", TITLES[:3], "Dune", "0101101001011100", "10.0.0.255", tok)
    assert tok.decode(p.input_ids[slice(*p.user_span)]).strip() == "0101101001011100"
    assert tok.decode(p.input_ids[slice(*p.item_span)]).strip() == "10.0.0.255"
    assert p.user_pos is None and p.item_pos is None
    assert p.user_span[1] <= p.candidate_start <= p.item_span[0]


def test_embedding_slots_are_single_positions(any_tokenizer):
    tok = any_tokenizer
    b = PromptBuilder("id_movie", tok, slot_token_id=7)
    p = b.build(TITLES[:3], "Dune", EMBED, EMBED)
    ids = list(p.input_ids)
    assert ids[p.user_pos] == 7 and ids[p.item_pos] == 7
    assert p.user_pos < p.candidate_start <= p.item_pos
    # the text on either side of each slot is exactly the tokenised template text around it
    before = tok.decode(ids[:p.user_pos], skip_special_tokens=True)
    assert before.endswith("encoded in the feature")
    middle = tok.decode(ids[p.user_pos + 1:p.item_pos])
    assert middle.startswith(". Using all available") and middle.endswith('titled "Dune" with the feature')
    assert tok.decode(ids[p.item_pos + 1:]) == '? Answer with "Yes" or "No". \\n#Answer:'
    # the position does not depend on the slot token (no searching for <unk>)
    q = PromptBuilder("id_movie", tok, slot_token_id=tok.convert_tokens_to_ids(tok.tokenize("the")[0])).build(
        TITLES[:3], "Dune", EMBED, EMBED)
    assert (q.user_pos, q.item_pos) == (p.user_pos, p.item_pos)


def test_ids_only_prompt(tiny):
    _, tok = tiny
    p = build_prompt("ids_only_movie", TITLES, None, EMBED, "0110", tok)
    assert p.n_titles == 0 and p.user_pos is not None and p.item_span is not None
    assert p.candidate_start <= p.item_span[0]
    text = tok.decode(p.input_ids, skip_special_tokens=True)
    assert "Movie" not in text and text.endswith('the movie with the feature 0110? Answer with "Yes" or "No". '
                                                  '\\n#Answer:')


def test_candidate_prefix_is_shared(any_tokenizer):
    tok = any_tokenizer
    b = PromptBuilder("id_movie", tok)
    a = b.build(TITLES, "Heat (1995)", "0101", "1.2.3.4")
    c = b.build(TITLES, "A Much Longer Title: The Sequel (2001)", "0101", "200.100.0.1")
    assert a.candidate_start == c.candidate_start
    assert a.input_ids[:a.candidate_start] == c.input_ids[:c.candidate_start]
    assert tok.decode(a.input_ids[:a.candidate_start], skip_special_tokens=True).endswith("enjoy the movie titled")


def test_truncation_drops_oldest_titles_first(tiny):
    _, tok = tiny
    full = [len(build_prompt("id_movie", TITLES[-k:] if k else [], "Dune", "0101", "1.2.3.4", tok))
            for k in range(11)]
    assert full == sorted(full) and len(set(full)) == 11
    for keep in (0, 3, 9):
        limit = full[keep]  # exactly fits `keep` titles
        p = build_prompt("id_movie", TITLES, "Dune", "0101", "1.2.3.4", tok, max_length=limit)
        assert p.n_titles == keep and len(p) <= limit
        text = tok.decode(p.input_ids, skip_special_tokens=True)
        kept = [t for t in TITLES if f'"{t}"' in text]
        assert kept == TITLES[len(TITLES) - keep:]  # the most recent ones
        assert text.endswith('with the feature 1.2.3.4? Answer with "Yes" or "No". \\n#Answer:')
    with pytest.raises(LlmrecError, match=f"max_length={full[0] - 1}"):
        build_prompt("id_movie", TITLES, "Dune", "0101", "1.2.3.4", tok, max_length=full[0] - 1)


def test_slot_errors(tiny):
    _, tok = tiny
    with pytest.raises(LlmrecError, match="<UserID> but no value"):
        build_prompt("id_movie", TITLES, "Dune", None, "1", tok)
    with pytest.raises(LlmrecError, match="has no <TargetItemID>"):
        build_prompt("text_movie", TITLES, "Dune", None, "1", tok)
    with pytest.raises(LlmrecError, match="target title is empty"):
        build_prompt("text_movie", TITLES, " ", None, None, tok)
    with pytest.raises(LlmrecError, match="code string or EMBED"):
        build_prompt("id_movie", TITLES, "Dune", 101, "1", tok)
    with pytest.raises(LlmrecError, match="empty or has surrounding spaces"):
        build_prompt("id_movie", TITLES, "Dune", "0101", "", tok)
