r"""A discrete-sequence data set with real structure: arithmetic expressions from a small grammar.

.. code-block:: text

    expr := term (op term)*          op   := "+" | "-" | "*"
    term := number | "(" expr ")"    number := one or two digits, no leading zero

Expressions such as ``(7+12)*3-45`` are generated at random, kept when they fit in
``max_len`` characters, tokenised one character per token and padded with a ``PAD`` token.
The grammar gives a sharp test of a sequence VAE: a decoded sample either parses or it
does not (:func:`is_valid`), and brackets must balance across the whole sequence.

References:

1. Bowman, S. R. et al. (2016). Generating Sentences from a Continuous Space. CoNLL.
2. Kusner, M. J., Paige, B. and Hernández-Lobato, J. M. (2017). Grammar Variational
   Autoencoder. ICML (arithmetic expressions as a VAE benchmark).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

#: Token vocabulary; index 0 is padding.
PAD = "_"
VOCAB: tuple[str, ...] = (PAD, *"0123456789", "+", "-", "*", "(", ")")
_INDEX = {c: i for i, c in enumerate(VOCAB)}
_OPS = "+-*"


@dataclass
class SequenceSet:
    """Token sequences and the vocabulary that reads them."""

    tokens: torch.Tensor  # (N, max_len) int64 token ids, PAD-padded on the right
    vocab: tuple[str, ...]  # id -> character

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def strings(self) -> list[str]:
        return decode(self.tokens, self.vocab)


def _number(rng: random.Random) -> str:
    return str(rng.randint(0, 9) if rng.random() < 0.6 else rng.randint(10, 99))


def _expr(rng: random.Random, depth: int) -> str:
    n_terms = rng.choice((1, 2, 2, 3)) if depth > 0 else rng.choice((2, 2, 3))
    parts = []
    for i in range(n_terms):
        if i:
            parts.append(rng.choice(_OPS))
        if depth < 2 and rng.random() < 0.3:
            parts.append("(" + _expr(rng, depth + 1) + ")")
        else:
            parts.append(_number(rng))
    return "".join(parts)


def generate_expressions(n: int, max_len: int = 16, seed: int = 0) -> list[str]:
    """``n`` distinct random expressions of at most ``max_len`` characters.

    :param n: number of expressions.
    :param max_len: longest allowed string.
    :param seed: seed of the generator (Python's ``random``, independent of torch).
    :raises ValueError: if ``max_len`` is too short to hold two terms.
    """
    if max_len < 3:
        raise ValueError(f"max_len must be at least 3 (e.g. '1+2'), got {max_len}")
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    tries = 0
    while len(seen) < n:
        s = _expr(rng, 0)
        if len(s) <= max_len:
            seen[s] = None
        tries += 1
        if tries > 200 * n + 10000:
            raise ValueError(f"could not generate {n} distinct expressions of length <= {max_len}")
    return list(seen)


def encode(strings: list[str], max_len: int) -> torch.Tensor:
    """Token ids of ``strings``, right-padded with ``PAD``: ``(N, max_len)`` int64."""
    out = torch.zeros(len(strings), max_len, dtype=torch.long)  # PAD is id 0
    for i, s in enumerate(strings):
        if len(s) > max_len:
            raise ValueError(f"{s!r} is longer than max_len={max_len}")
        try:
            out[i, : len(s)] = torch.tensor([_INDEX[c] for c in s])
        except KeyError as e:
            raise ValueError(f"{s!r} contains {e.args[0]!r}, which is not in the vocabulary {''.join(VOCAB)}") from None
    return out


def decode(tokens: torch.Tensor, vocab: tuple[str, ...] = VOCAB) -> list[str]:
    """Strings from token ids ``(N, L)``; padding is dropped wherever it occurs."""
    return ["".join(vocab[int(t)] for t in row if int(t) != 0) for row in tokens]


def is_valid(s: str) -> bool:
    """Whether ``s`` is a sentence of the grammar (balanced brackets, no leading zeros)."""
    pos = 0

    def number() -> bool:
        nonlocal pos
        start = pos
        while pos < len(s) and s[pos].isdigit():
            pos += 1
        digits = s[start:pos]
        return 1 <= len(digits) <= 2 and not (len(digits) == 2 and digits[0] == "0")

    def term() -> bool:
        nonlocal pos
        if pos < len(s) and s[pos] == "(":
            pos += 1
            if not expr() or pos >= len(s) or s[pos] != ")":
                return False
            pos += 1
            return True
        return number()

    def expr() -> bool:
        nonlocal pos
        if not term():
            return False
        while pos < len(s) and s[pos] in _OPS:
            pos += 1
            if not term():
                return False
        return True

    return expr() and pos == len(s)


def load_expressions(
    n_train: int = 20000, n_test: int = 2000, max_len: int = 16, seed: int = 0
) -> tuple[SequenceSet, SequenceSet]:
    """Disjoint training and test sets of expressions.

    :param n_train: training sequences.
    :param n_test: test sequences (none of them in the training set).
    :param max_len: sequence length L (every row is padded to it).
    :param seed: generator seed.
    :returns: ``(train, test)`` :class:`SequenceSet` objects with ``tokens (N, L)``.
    """
    strings = generate_expressions(n_train + n_test, max_len, seed)
    return (
        SequenceSet(encode(strings[:n_train], max_len), VOCAB),
        SequenceSet(encode(strings[n_train:], max_len), VOCAB),
    )


def token_accuracy(predicted: torch.Tensor, target: torch.Tensor, ignore_padding: bool = True) -> float:
    """Fraction of positions where ``predicted`` equals ``target`` (both ``(N, L)``).

    :param ignore_padding: count only positions where the target is not ``PAD``.
    """
    if predicted.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(predicted.shape)} vs {tuple(target.shape)}")
    mask = target != 0 if ignore_padding else torch.ones_like(target, dtype=torch.bool)
    return float((predicted.long() == target.long())[mask].float().mean())
