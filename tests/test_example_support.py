"""The library pieces the examples stand on: the plain autoencoder, the conditional VAE, the
recurrent nets and the expression data set, the denoising encoder, metrics and experiment
plumbing."""

from __future__ import annotations

import itertools
import json

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyrovae import VAE, likelihoods, nets
from pyrovae.cli import experiment
from pyrovae.data import expressions
from pyrovae.evaluate import sample_quality
from pyrovae.models import Autoencoder, ConditionalVAE
from pyrovae.nets import ConditionalMLPDecoder, ConditionalMLPEncoder, NoisyEncoder
from pyrovae.train import fit_conditional


# -- sequences ------------------------------------------------------------------------------
def test_expressions_are_valid_distinct_and_disjoint():
    train, test = expressions.load_expressions(300, 50, max_len=12, seed=1)
    assert train.tokens.shape == (300, 12) and test.tokens.dtype == torch.long
    strings = train.strings + test.strings
    assert len(set(strings)) == 350 and all(expressions.is_valid(s) and len(s) <= 12 for s in strings)
    assert expressions.decode(expressions.encode(strings, 12)) == strings


@pytest.mark.parametrize("s", ["(1+2", "1+2)", "01+3", "1++2", "", "+1", "123", "()", "1+(2*)"])
def test_is_valid_rejects_non_sentences(s):
    assert not expressions.is_valid(s)


def test_token_accuracy_ignores_padding():
    target = expressions.encode(["1+2", "34"], 5)
    pred = target.clone()
    pred[0, 0] = 5  # one wrong token out of 5 non-pad tokens
    pred[:, 4] = 7  # padding positions: not counted
    assert expressions.token_accuracy(pred, target) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        expressions.encode(["1/2"], 5)


# -- recurrent nets -------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_recurrent_vae_sites_and_shapes(cell):
    length, vocab, z_dim = 7, len(expressions.VOCAB), 3
    vae = VAE(nets.RNNEncoder(length, vocab, z_dim, hidden=16, cell=cell),
              nets.RNNDecoder(z_dim, length, vocab, hidden=16, cell=cell), likelihood=likelihoods.Categorical(vocab))
    x = expressions.encode(["1+2", "(3*4)-5"], length)  # (2, 7)
    loc, scale = vae.encoder(x)
    assert loc.shape == scale.shape == (2, z_dim) and (scale > 0).all()
    assert vae.decoder(loc).shape == (2, length, vocab)
    trace = poutine.trace(poutine.replay(vae.model, trace=poutine.trace(vae.guide).get_trace(x))).get_trace(x)
    assert trace.nodes["x"]["fn"].event_shape == (length,) and trace.nodes["z"]["value"].shape == (2, z_dim)
    assert vae.sample(4).shape == (4, length)
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        nets.RNNEncoder(length, vocab, z_dim, cell="rnn")


# -- autoencoder ----------------------------------------------------------------------------
def test_autoencoder_loss_is_reconstruction_only():
    enc, dec = nets.MLPEncoder((6,), (8,), 2), nets.MLPDecoder(2, (8,), (6,))
    ae = Autoencoder(enc, dec)
    x = torch.bernoulli(torch.full((5, 6), 0.5))
    loss = Trace_ELBO().loss(ae.model, ae.guide, x)  # deterministic: the guide is a point mass
    with torch.no_grad():
        expected = -float(ae.likelihood(dec(enc(x)[0])).log_prob(x).sum())
    assert loss == pytest.approx(expected, rel=1e-5)
    assert isinstance(ae.encode(x), pyro.distributions.Delta)
    assert torch.equal(ae.encode(x).sample(), enc(x)[0])


# -- conditional VAE ------------------------------------------------------------------------
def test_conditional_vae_sites_generation_and_training():
    cvae = ConditionalVAE(ConditionalMLPEncoder((1, 4, 4), 3, (16,), 2), ConditionalMLPDecoder(2, 3, (16,), (1, 4, 4)))
    x = torch.bernoulli(torch.full((30, 1, 4, 4), 0.3))
    y = torch.arange(30) % 3
    trace = poutine.trace(cvae.model).get_trace(x, y, num_data=60)
    assert {"z", "x", "data"} <= set(trace.nodes) and trace.nodes["data"]["value"].numel() == 30
    assert cvae.generate(torch.tensor([0, 2])).shape == (2, 1, 4, 4)
    assert cvae.style_transfer(x[:2], y[:2], torch.arange(3)).shape == (2, 3, 1, 4, 4)
    history = fit_conditional(cvae, x, y, epochs=30, batch_size=10)
    assert history[-1] > history[0]  # the ELBO rises
    assert cvae.elbo(x, y).shape == (30,)
    with pytest.raises(ValueError, match="labels must lie"):
        cvae.model(x, y + 3)


# -- denoising ------------------------------------------------------------------------------
def test_noisy_encoder_corrupts_only_in_training():
    enc = NoisyEncoder(nets.MLPEncoder((1, 4, 4), (8,), 2), "flip", 0.5)
    x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.5))
    enc.eval()
    assert torch.equal(enc(x)[0], enc.encoder(x)[0])
    enc.train()
    assert not torch.equal(enc(x)[0], enc.encoder(x)[0])
    with pytest.raises(ValueError, match="unknown noise"):
        NoisyEncoder(enc.encoder, "blur")


# -- metrics --------------------------------------------------------------------------------
def test_roc_auc_matches_pairwise_definition():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (60,), generator=g).float()  # many ties
    labels = torch.rand(60, generator=g) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(pos.tolist(), neg.tolist())]
    assert sample_quality.roc_auc(scores, labels) == pytest.approx(sum(pairs) / len(pairs))
    assert sample_quality.roc_auc(torch.tensor([0.0, 1.0]), torch.tensor([False, True])) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        sample_quality.roc_auc(torch.ones(3), torch.ones(3))


def test_nearest_distance_and_far_fraction():
    ref = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = torch.tensor([[0.1, 0.0], [5.0, 5.0]])
    assert torch.allclose(sample_quality.nearest_distance(x, ref, batch_size=1), torch.tensor([0.1, 32 ** 0.5]))
    far, threshold = sample_quality.far_fraction(x, ref)
    assert threshold == pytest.approx(1.0) and far == 0.5


def test_classifier_log_prob_is_a_log_probability():
    x = torch.rand(40, 1, 28, 28)
    y = torch.arange(40) % 10
    clf = sample_quality.train_digit_classifier(x, y, epochs=1)
    best, given = sample_quality.classifier_log_prob(clf, x), sample_quality.classifier_log_prob(clf, x, y)
    assert best.shape == given.shape == (40,) and (given <= best + 1e-6).all() and (best <= 0).all()


# -- experiment plumbing --------------------------------------------------------------------
def test_experiment_defaults_and_finish(tmp_path, capsys):
    p = experiment.parser("Title line.\n\nMore.", epochs=3, z_dim=4)
    args = experiment.defaults(p, epochs=1, out=tmp_path)
    assert (args.epochs, args.z_dim, args.subset) == (1, 4, None)
    with pytest.raises(ValueError, match="unknown argument"):
        experiment.defaults(p, epoch=1)
    run = experiment.start(args)
    numbers = run.finish("demo", {"value": torch.tensor([1.5])}, key="value")
    assert json.loads((tmp_path / "demo.json").read_text()) == numbers and numbers["value"] == [1.5]
    assert "demo: value = [1.5]" in capsys.readouterr().out
