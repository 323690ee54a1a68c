"""Resampling statistics over per-example scores: bootstrap confidence intervals and a paired test.

Both take a fixed seed, so the same inputs always give the same numbers, and draw their resamples in
chunks so that 1,000 resamples of the 11,490 CNN/DailyMail test examples stay within a few MiB.

Example:
    >>> scores = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    >>> bootstrap_ci(scores, samples=1000, seed=0).shape   # (keys, [low, high])
    (2, 2)
    >>> paired_permutation_test(np.zeros(5), samples=1000, seed=0)
    1.0
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MIN_SAMPLES = 1000
_CHUNK = 100  # resamples drawn at once: 100 x n indices


def _chunks(samples: int) -> Iterator[int]:
    """Sizes of the resample chunks, summing to `samples`.

    Example:
        >>> list(_chunks(250))
        [100, 100, 50]
    """
    for start in range(0, samples, _CHUNK):
        yield min(_CHUNK, samples - start)


def bootstrap_means(values: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Means of `samples` bootstrap resamples (rows drawn with replacement) of `values` (n, keys).

    Example:
        >>> bootstrap_means(np.ones((4, 2)), samples=3, seed=0)
        array([[1., 1.],
               [1., 1.],
               [1., 1.]])
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("cannot bootstrap zero examples")
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1)
             for size in _chunks(samples)]
    return np.concatenate(means)


def bootstrap_ci(values: np.ndarray, samples: int, seed: int, confidence: float = 0.95) -> np.ndarray:
    """Percentile bootstrap interval of the mean of each column of `values` (n, keys) -> (keys, 2).

    Example:
        >>> bootstrap_ci(np.array([[1.0], [1.0]]), samples=1000, seed=0)
        array([[1., 1.]])
    """
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(bootstrap_means(values, samples, seed), [tail, 100.0 - tail], axis=0)
    return np.stack([low, high], axis=-1)


def paired_permutation_test(differences: np.ndarray, samples: int, seed: int) -> float:
    """Two-sided paired permutation (sign-flip) test that the mean per-example difference is 0.

    Under the null hypothesis each example's two scores are exchangeable, so each difference keeps
    its size but gets a random sign. p = (1 + #{|mean of flipped| >= |observed mean|}) / (1 + samples);
    the +1 counts the observed assignment, so p is never 0.

    Example:
        >>> paired_permutation_test(np.zeros(10), samples=1000, seed=0)   # identical systems
        1.0
        >>> paired_permutation_test(np.full(60, 5.0), samples=1000, seed=0)  # always 5 points better
        0.000999000999000999
    """
    differences = np.asarray(differences, dtype=float)
    if len(differences) == 0:
        raise ValueError("cannot test zero paired examples")
    observed = abs(differences.mean())
    tolerance = 1e-12 * max(1.0, observed)  # float noise must not turn a tie into a miss
    rng = np.random.default_rng(seed)
    extreme = 0
    for size in _chunks(samples):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, len(differences)))
        extreme += int((np.abs((signs * differences).mean(axis=1)) >= observed - tolerance).sum())
    return (1 + extreme) / (1 + samples)
