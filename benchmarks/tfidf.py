"""The character TF-IDF + logistic-regression sentiment baseline shared by the benchmarks.

``benchmarks/sentiment.py`` measures the fine-tuned head against it; ``benchmarks/pplm.py``
uses it as an independent judge of steered text (it shares nothing with the language model
or the PPLM discriminator). Needs scikit-learn (the ``dev`` extra)::

    from tfidf import fit_tfidf          # run from a script in benchmarks/
    judge = fit_tfidf(train_texts, train_labels)
    judge.accuracy(test_texts, test_labels), judge.p_positive(["정말 재밌다"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class TfidfJudge:
    """A fitted vectoriser and classifier; labels 0 = negative, 1 = positive."""

    vectorizer: Any
    classifier: Any

    def p_positive(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) P(label 1) of each text."""
        proba = self.classifier.predict_proba(self.vectorizer.transform(list(texts)))
        return proba[:, list(self.classifier.classes_).index(1)]

    def accuracy(self, texts: Sequence[str], labels: Sequence[int]) -> float:
        """Share of ``texts`` whose predicted label equals ``labels``."""
        pred = self.classifier.predict(self.vectorizer.transform(list(texts)))
        return float((pred == np.asarray(labels)).mean())


def fit_tfidf(texts: Sequence[str], labels: Sequence[int]) -> TfidfJudge:
    """Character 1-4-gram TF-IDF (within word boundaries) + logistic regression, fitted on ``texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True, max_features=300_000)
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(vec.fit_transform(list(texts)), list(labels))
    return TfidfJudge(vec, clf)
