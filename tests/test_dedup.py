"""Near-duplicate and decontamination building blocks."""

import random

import numpy as np

from prefalign.decontaminate import overlap, prompt_ngrams, question_ngrams
from prefalign.dedup import NearDuplicates, jaccard, lsh_bands, shingles, words
from prefalign.records import make_record, message


def test_words_and_shingles_ignore_case_and_punctuation():
    assert words("Hello, World!  It's me.") == ["hello", "world", "it", "s", "me"]
    assert shingles("A b, c d.", 3) == ["a b c", "b c d"]
    assert shingles("Short.", 3) == ["short"] and shingles("", 3) == [""]


def test_lsh_bands_catch_near_duplicates_and_few_siblings():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(128, threshold)
        assert bands * rows <= 128
        at_threshold = 1 - (1 - threshold ** (3 * rows)) ** bands  # all three fields exactly at the threshold
        one_field_edited = 1 - (1 - threshold ** rows) ** bands  # the usual near duplicate: one field edited
        assert at_threshold >= 0.9 and one_field_edited > 0.999
    bands, rows = lsh_bands(128, 0.8)  # the default: same prompt and chosen, another rejected reply (J 0.05)
    assert 1 - (1 - 0.05 ** rows) ** bands < 0.01


def test_sketch_agreement_estimates_jaccard():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(400)]
    finder = NearDuplicates(perms=128)
    records, exact = [], []
    for k in range(40):
        base = [rng.choice(vocab) for _ in range(120)]
        edited = list(base)
        for i in rng.sample(range(120), k):
            edited[i] = rng.choice(vocab)
        a, b = " ".join(base), " ".join(edited)
        records += [make_record("a", "s", [message("user", a)], a, a), make_record("b", "s", [message("user", b)], b, b)]
        exact.append(jaccard(set(shingles(a, 3)), set(shingles(b, 3))))
    finder.add(records)
    sig = finder.signatures()
    estimates = (sig[0::2, 0] == sig[1::2, 0]).mean(axis=1)
    assert np.abs(estimates - np.array(exact)).mean() < 0.05


def test_decontamination_ngrams_per_turn_and_questions_only():
    prompt = [message("user", "What is the boiling point of water at sea level in Celsius?"),
              message("assistant", "100 degrees."), message("user", "And in Fahrenheit?")]
    grams = prompt_ngrams(prompt, 8)
    assert len(grams) == 5 + 1  # 12 words: five 8-grams; the short last turn is one n-gram; no assistant turn
    assert question_ngrams(prompt, 8) == prompt_ngrams([prompt[-1]], 8)
    assert overlap(question_ngrams(prompt, 8), set(grams)) == 1.0
    assert overlap(frozenset(), set(grams)) == 0.0
