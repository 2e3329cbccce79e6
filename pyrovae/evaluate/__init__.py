"""What a trained VAE learned, in numbers.

- :mod:`~pyrovae.evaluate.bounds`: ELBO terms, importance-weighted log p(x), the ELBO gap;
- :mod:`~pyrovae.evaluate.collapse`: active units, KL per dimension, mutual information,
  the aggregate posterior, a collapse report;
- :mod:`~pyrovae.evaluate.anomaly`: anomaly scores and ranking;
- :mod:`~pyrovae.evaluate.sample_quality`: nearest-neighbour distances, a digit classifier,
  ROC AUC.

Every function takes a trained VAE and data ``(N, *x_shape)`` (or an iterable of batches)
and works in batches on the model's device.
"""

from .._util.batching import model_device
from .anomaly import AnomalyScores, anomaly_scores, rank
from .bounds import ELBOTerms, LogLikelihood, elbo, elbo_gap, elbo_terms, kl_is_analytic, log_likelihood, log_weights
from .collapse import (
    ACTIVE_THRESHOLD,
    AggregatePosterior,
    active_units,
    aggregate_kl,
    aggregate_posterior,
    collapse_report,
    kl_per_dim,
    mutual_information,
    unit_activity,
)

__all__ = [
    "ACTIVE_THRESHOLD",
    "AggregatePosterior",
    "AnomalyScores",
    "ELBOTerms",
    "LogLikelihood",
    "active_units",
    "aggregate_kl",
    "aggregate_posterior",
    "anomaly_scores",
    "collapse_report",
    "elbo",
    "elbo_gap",
    "elbo_terms",
    "kl_is_analytic",
    "kl_per_dim",
    "log_likelihood",
    "log_weights",
    "model_device",
    "mutual_information",
    "rank",
    "unit_activity",
]
