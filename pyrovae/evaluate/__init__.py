"""What a trained VAE learned, in numbers.

- :mod:`~pyrovae.evaluate.bounds`: ELBO terms, importance-weighted log p(x), the ELBO gap;
- :mod:`~pyrovae.evaluate.importance`: importance weights and their statistics (log-mean-exp,
  ESS, self-normalised inclusive KL);
- :mod:`~pyrovae.evaluate.posterior`: the one summary of q(z|x) over a data set (means and
  standard deviations for any guide: Normal, flow, point mass);
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
from .bounds import ELBOTerms, LogLikelihood, elbo, elbo_gap, elbo_terms, kl_is_analytic, log_likelihood
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
from .importance import ImportanceStats, importance_stats, log_weights
from .posterior import PosteriorSummary, encode_all

__all__ = [
    "ACTIVE_THRESHOLD",
    "AggregatePosterior",
    "AnomalyScores",
    "ELBOTerms",
    "ImportanceStats",
    "LogLikelihood",
    "PosteriorSummary",
    "active_units",
    "aggregate_kl",
    "aggregate_posterior",
    "anomaly_scores",
    "collapse_report",
    "elbo",
    "elbo_gap",
    "elbo_terms",
    "encode_all",
    "importance_stats",
    "kl_is_analytic",
    "kl_per_dim",
    "log_likelihood",
    "log_weights",
    "model_device",
    "mutual_information",
    "rank",
    "unit_activity",
]
