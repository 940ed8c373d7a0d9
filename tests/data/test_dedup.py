"""Near-duplicate and decontamination building blocks."""

import random

from prefalign.data.decontaminate import overlap, prompt_ngrams, question_ngrams
from prefalign.data.dedup import NearDuplicates, jaccard, lsh_bands, shingles, words
from prefalign.records import make_record, message


def test_words_and_shingles_ignore_case_and_punctuation():
    assert words("Hello, World!  It's me.") == ["hello", "world", "it", "s", "me"]
    assert shingles("A b, c d.", 3) == ["a b c", "b c d"]
    assert shingles("Short.", 3) == ["short"] and shingles("", 3) == [""]


def test_lsh_bands_catch_pairs_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(128, threshold)
        assert bands * rows == 128
        assert 1 - (1 - threshold ** rows) ** bands >= 0.9
    bands, rows = lsh_bands(128, 0.8)  # the default: pairs sharing only common words are rarely candidates
    assert 1 - (1 - 0.3 ** rows) ** bands < 0.01


def corpus(rng, n):
    vocab = [f"w{i}" for i in range(500)]
    text = lambda k: " ".join(rng.choice(vocab) for _ in range(k))  # noqa: E731
    return [make_record(f"r/{i}", "s", [message("user", text(20))], text(60), text(60)) for i in range(n)]


def edited(record, rng, new_id):
    words = record["rejected"][0]["content"].split()
    words[rng.randrange(len(words))] = "changed"
    return dict(record, id=new_id, rejected=[message("assistant", " ".join(words).upper() + "!")])


def test_near_duplicates_across_chunks_name_the_earlier_pair():
    rng = random.Random(3)
    records = corpus(rng, 300)
    records += [edited(records[5], rng, "copy/5"), edited(records[290], rng, "copy/290")]
    dead = {290}
    finder = NearDuplicates(load=lambda i: records[i], alive=lambda i: i not in dead)
    matches = []
    for start in range(0, len(records), 64):  # the copy of 5 meets it across chunks
        matches += finder.add(records[start:start + 64])
    assert [(m.index, m.of) for m in matches] == [(300, 5)]  # 290 was dropped before: its copy stays
    assert matches[0].similarity[:2] == (1.0, 1.0) and 0.9 < matches[0].similarity[2] < 1.0


def test_siblings_sharing_prompt_and_chosen_are_not_near_duplicates():
    rng = random.Random(4)
    base = corpus(rng, 1)[0]
    siblings = [dict(base, id=f"s/{k}", rejected=[message("assistant", f"another reply number {k}")])
                for k in range(6)]
    finder = NearDuplicates(load=lambda i: siblings[i], alive=lambda i: True)
    assert finder.add(siblings) == []
    assert jaccard(set(shingles("a b c d", 3)), set(shingles("a b c e", 3))) == 1 / 3


def test_decontamination_ngrams_per_turn_and_questions_only():
    prompt = [message("user", "What is the boiling point of water at sea level in Celsius?"),
              message("assistant", "100 degrees."), message("user", "And in Fahrenheit?")]
    grams = prompt_ngrams(prompt, 8, 1)
    assert len(grams) == 5 + 1  # 12 words: five 8-grams; the short last turn is one n-gram; no assistant turn
    assert question_ngrams(prompt, 8, 1) == prompt_ngrams([prompt[-1]], 8, 1)
    assert overlap(question_ngrams(prompt, 8, 1), set(grams)) == 1.0
    # Turns of fewer than min_words words are left out: "And in Fahrenheit?" has three.
    assert prompt_ngrams(prompt, 8, 4) == prompt_ngrams(prompt[:1], 8, 4) and question_ngrams(prompt, 8, 4) == set()
    assert overlap(frozenset(), set(grams)) == 0.0
