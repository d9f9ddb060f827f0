"""Text measures of the checks, all on Python strings (so "characters" are code points). No Django.

- levenshtein: d = edit distance (insert, delete, substitute, each 1), computed
  by rapidfuzz; similarity = 1 - d / max(len(a), len(b)), 1 when both are empty
  (rapidfuzz's normalized similarity). Both texts are stripped first.
- rouge_n, rouge_l: rouge-score's tokens (the reference implementation of
  Google Research, without stemming, its default): lower-case, every run of
  characters outside a-z and 0-9 becomes a space, split. ROUGE-N: C, R =
  multisets of the n-grams of the output and the reference; overlap = sum over
  g of min(C[g], R[g]); P = overlap / |C|, R = overlap / |R|. ROUGE-L: overlap
  = the length of the longest common token subsequence; P = overlap / output
  tokens, R = overlap / reference tokens. F1 = 2PR / (P + R), 0 when overlap = 0.
- token_f1 (SQuAD v1.1): lowercase, drop ASCII punctuation, drop the articles
  a, an, the, split on whitespace; then F1 of the token multisets as above;
  1 when both are empty, 0 when one is. A lexical measure, not embeddings:
  results name it as such.
- tfidf_cosine: the corpus is the eval set's expected answers (N documents),
  lower-cased whitespace tokens; idf(t) = ln((1 + N) / (1 + df(t))) + 1 (scikit-learn's
  smooth idf; a term outside the corpus has df = 0), weight = count x idf;
  score = cosine of the two weight vectors, 0 when either is empty.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz.distance import LCSseq, Levenshtein

from .results import CheckError

# rapidfuzz's bit-parallel edit distance takes about len(a) x len(b) / 64 steps: 100,000 characters
# against 100,000 is well under a second; longer texts are refused, not left running.
MAX_LEVENSHTEIN_CHARS = 100_000


@dataclass(frozen=True)
class Corpus:
    """Document frequencies of the eval set's expected answers, for tfidf_cosine."""

    documents: int
    df: Mapping[str, int]

    def idf(self, term: str) -> float:
        return math.log((1 + self.documents) / (1 + self.df.get(term, 0))) + 1


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    f1: float


def levenshtein_distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions cost 1), by rapidfuzz."""
    longest = max(len(a), len(b))
    if longest > MAX_LEVENSHTEIN_CHARS:
        raise CheckError(f"levenshtein compares texts of up to {MAX_LEVENSHTEIN_CHARS:,} characters; this one has {longest:,}")
    return Levenshtein.distance(a, b)


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - levenshtein_distance(a, b) / max(len(a), len(b)); 1.0 for two empty texts."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein_distance(a, b) / longest


_NOT_ALPHANUMERIC_RE = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokens: lower-case, every run of characters outside a-z and 0-9 is a separator."""
    return _NOT_ALPHANUMERIC_RE.sub(" ", text.lower()).split()


def _f1(overlap: int, produced: int, expected: int) -> RougeScore:
    if overlap == 0:
        return RougeScore(0.0, 0.0, 0.0)
    precision, recall = overlap / produced, overlap / expected
    return RougeScore(precision, recall, 2 * precision * recall / (precision + recall))


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: str, reference: str, n: int = 1) -> RougeScore:
    """ROUGE-N on rouge-score's tokens: overlap = sum min(C[g], R[g]); P = overlap / |C|, R = overlap / |R|, F1 = 2PR / (P + R)."""
    c, r = _ngrams(rouge_tokens(candidate), n), _ngrams(rouge_tokens(reference), n)
    return _f1(sum((c & r).values()), sum(c.values()), sum(r.values()))


def rouge_l(candidate: str, reference: str) -> RougeScore:
    """ROUGE-L on rouge-score's tokens: overlap = the longest common token subsequence (rapidfuzz's LCSseq)."""
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    return _f1(LCSseq.similarity(c, r) if c and r else 0, len(c), len(r))


_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def _squad_tokens(text: str) -> list[str]:
    return _ARTICLES_RE.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token F1: normalised tokens (lowercase, no punctuation, no a/an/the), F1 of the token multisets."""
    p, g = _squad_tokens(prediction), _squad_tokens(reference)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def tfidf_corpus(documents: Iterable[str]) -> Corpus:
    """Document frequencies of lowercase whitespace tokens over `documents` (the eval set's expected answers)."""
    df: Counter = Counter()
    n = 0
    for document in documents:
        n += 1
        df.update(set(document.lower().split()))
    return Corpus(documents=n, df=dict(df))


def tfidf_cosine(a: str, b: str, corpus: Corpus) -> float:
    """Cosine of the count x idf vectors, idf(t) = ln((1 + N) / (1 + df(t))) + 1; 0 when either text has no tokens."""
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    if not ca or not cb:
        return 0.0
    idf = {t: corpus.idf(t) for t in ca.keys() | cb.keys()}
    dot = sum(ca[t] * cb[t] * idf[t] ** 2 for t in ca.keys() & cb.keys())
    norm_a = math.sqrt(sum((k * idf[t]) ** 2 for t, k in ca.items()))
    norm_b = math.sqrt(sum((k * idf[t]) ** 2 for t, k in cb.items()))
    return dot / (norm_a * norm_b)
