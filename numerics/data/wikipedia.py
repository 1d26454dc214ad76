"""Real text: the 250-article Wikipedia sample that ships with gensim, and an LDA fit of it.

The corpus is ``head500.noblanks.cor`` from gensim's test data (``gensim.test.utils.datapath``;
nothing is downloaded): the first articles of an English Wikipedia dump, one article a line,
already lower-cased, stemmed and stripped of stop words by gensim's Wikipedia preprocessing.
Everything is read through gensim's own readers: :class:`gensim.models.word2vec.LineSentence`
for the articles, :class:`gensim.corpora.Dictionary` for the vocabulary (``filter_extremes``:
words in at least ``no_below`` articles and at most a fraction ``no_above`` of them, the
``words`` most frequent kept), and :class:`gensim.models.LdaModel` for the topics, as the
reference code of Li, Li and Risteski (2023) does for its Wikipedia experiment.

gensim is imported inside the functions that need it (it takes seconds to import), so that
``import numerics`` stays light.

Token ids: vocabulary words ``0..V-1`` (gensim's dictionary ids), ``[MASK] = V``, padding
``V+1``, as in :mod:`numerics.data.lda`, so that :func:`numerics.data.lda.mask_for_mlm` and the
topic model of :mod:`numerics.models.topic_transformer` apply unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numerics.data.lda import Documents

#: The corpus file inside gensim's test data, and the number of articles (lines) it holds.
CORPUS_FILE = "head500.noblanks.cor"
ARTICLES = 250
#: LineSentence cuts lines longer than this into pieces; the longest article has 6610 words.
_LONGEST_LINE = 1_000_000


@dataclass(frozen=True)
class WikipediaCorpus:
    """The articles as token ids over a filtered vocabulary.

    Attributes
    ----------
    articles : tuple[numpy.ndarray, ...]
        One ``(n_a,)`` int64 array per article: its words in order, out-of-vocabulary words
        dropped.
    words : tuple[str, ...]
        ``(V,)`` the vocabulary: ``words[i]`` is the (stemmed) word of id ``i``.
    counts : numpy.ndarray
        ``(articles, V)`` how often each word occurs in each article (the bag of words LDA
        reads).
    lines : int
        Lines (articles) read from the corpus file.
    tokens_read : int
        Words read before the vocabulary filter.
    """

    articles: tuple[np.ndarray, ...]
    words: tuple[str, ...]
    counts: np.ndarray
    lines: int
    tokens_read: int

    @property
    def V(self) -> int:
        """Vocabulary size."""
        return len(self.words)


def load_wikipedia(words: int, no_below: int = 5, no_above: float = 0.5) -> WikipediaCorpus:
    """Read the gensim Wikipedia sample and keep its ``words`` most frequent words.

    Parameters
    ----------
    words : int
        Vocabulary size ``V`` (the most frequent of the words that pass the filter).
    no_below : int
        A word must occur in at least this many articles.
    no_above : float
        A word may occur in at most this fraction of the articles (drops words that carry no
        topic, such as ``retriev`` from every article's references).

    Raises
    ------
    ValueError
        When fewer than ``words`` words pass the filter.
    """
    from gensim.corpora import Dictionary
    from gensim.models.word2vec import LineSentence
    from gensim.test.utils import datapath

    lines = [list(line) for line in LineSentence(datapath(CORPUS_FILE),
                                                 max_sentence_length=_LONGEST_LINE)]
    dictionary = Dictionary(lines)
    dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=words)
    if len(dictionary) < words:
        raise ValueError(f"only {len(dictionary)} words occur in at least {no_below} articles "
                         f"(and in at most {no_above:g} of them); asked for {words}")
    articles = tuple(np.array([i for i in dictionary.doc2idx(line) if i >= 0], dtype=np.int64)
                     for line in lines)
    counts = np.stack([np.bincount(a, minlength=words) for a in articles])
    return WikipediaCorpus(articles, tuple(dictionary[i] for i in range(words)), counts,
                           len(lines), sum(len(line) for line in lines))


@dataclass(frozen=True)
class TopicFit:
    """An LDA fit of the corpus and the dominant topic of every word.

    Attributes
    ----------
    topic_words : numpy.ndarray
        ``(T, V)`` the topics' word distributions ``phi_t(w)`` (rows sum to 1).
    article_topics : numpy.ndarray
        ``(articles, T)`` each article's topic mixture ``theta_a`` (rows sum to 1).
    topic_shares : numpy.ndarray
        ``(T,)`` ``p(t)``: the fraction of the corpus's words drawn from topic ``t``
        (token-weighted mean of ``theta_a``).
    labels : numpy.ndarray
        ``(V,)`` the dominant topic of each word, ``argmax_t p(t | w)`` with
        ``p(t | w) ~ phi_t(w) p(t)``.
    """

    topic_words: np.ndarray
    article_topics: np.ndarray
    topic_shares: np.ndarray
    labels: np.ndarray

    @property
    def T(self) -> int:
        """Number of topics."""
        return self.topic_words.shape[0]


def fit_topics(corpus: WikipediaCorpus, topics: int, passes: int, seed: int) -> TopicFit:
    """Fit ``gensim.models.LdaModel`` (``topics`` topics, ``passes`` passes, the document
    prior ``alpha`` learned from the data, ``random_state=seed``) and label every word with
    its dominant topic (see :class:`TopicFit`)."""
    from gensim.models import LdaModel

    bags = [[(int(w), int(row[w])) for w in np.flatnonzero(row)] for row in corpus.counts]
    lda = LdaModel(bags, num_topics=topics, id2word=dict(enumerate(corpus.words)),
                   passes=passes, alpha="auto", random_state=seed)
    phi = lda.get_topics().astype(np.float64)  # (T, V)
    gamma, _ = lda.inference(bags)  # variational Dirichlet parameters, (articles, T)
    theta = gamma / gamma.sum(1, keepdims=True)
    lengths = corpus.counts.sum(1)
    shares = (lengths[:, None] * theta).sum(0) / lengths.sum()
    return TopicFit(phi, theta, shares, np.argmax(phi * shares[:, None], axis=0))


def chunk_articles(articles: Sequence[np.ndarray], length: int) -> Documents:
    """Cut every article into consecutive pieces of ``length`` words (an article's last,
    shorter piece is dropped, so no piece is padded): the documents the model reads."""
    pieces = [article[start : start + length] for article in articles
              for start in range(0, len(article) - length + 1, length)]
    if not pieces:
        raise ValueError(f"no article has {length} words")
    tokens = np.stack(pieces)
    return Documents(tokens, np.full(len(tokens), length))


def shuffle_words(rng: np.random.Generator, articles: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, ...]:
    """The same articles (same lengths) with their words permuted across the whole
    collection: every word keeps its frequency, but which words share an article is random
    (a corpus without topics)."""
    pooled = rng.permutation(np.concatenate(articles))
    ends = np.cumsum([len(a) for a in articles])
    return tuple(np.split(pooled, ends[:-1]))


def split_articles(rng: np.random.Generator, count: int, held_out: float) -> np.ndarray:
    """``(count,)`` bool, ``True`` for the articles held out for evaluation (a seeded
    random fraction ``held_out`` of them, at least one)."""
    chosen = rng.permutation(count)[: max(1, round(held_out * count))]
    mask = np.zeros(count, dtype=bool)
    mask[chosen] = True
    return mask
