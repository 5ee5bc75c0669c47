"""Test-time decoder adaptation (core.adaptation): it fits what was observed, leaves the trained
decoder alone, and the anchor keeps the shape away from the observations."""

import torch

from sdf_autodec.core.adaptation import AdaptConfig, adapt_decoder
from sdf_autodec.core.observations import Observations
from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.nn.mlp import CoordinateMLP, DecoderConfig
from sdf_autodec.shapes.loss import clamped_l1

SMALL = DecoderConfig(latent_size=8, depth=4, width=32, skip_layers=[2], dropout=0.0)


def _loss(pred, obs):
    return clamped_l1(pred, obs, 0.1)


def _prior(radius: float = 0.42) -> CoordinateMLP:
    """A decoder trained (briefly) on one shape: a sphere of ``radius`` at the zero code (close
    enough to the observed sphere of 0.5 that the clamped loss sees it)."""
    torch.manual_seed(0)
    dec = CoordinateMLP(SMALL)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)
    code = torch.zeros(1, 8)
    for _ in range(300):
        q = torch.rand(1, 2048, 3, generator=g) * 2 - 1
        sdf = q.norm(dim=-1) - radius
        loss = (dec(code, q).squeeze(-1) - sdf).abs().mean()  # plain L1: the clamp gives no gradient far out
        opt.zero_grad()
        loss.backward()
        opt.step()
    return dec


def _sphere_cap(n: int = 600, radius: float = 0.5, eta: float = 0.02) -> Observations:
    """The upper half of a sphere as a scan sees it: surface points (SDF 0) and ±η along the normal."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    d[:, 1] = d[:, 1].abs()
    p = radius * d
    queries = torch.cat([p, p + eta * d, p - eta * d])[None]
    targets = torch.cat([torch.zeros(n), torch.full((n,), eta), torch.full((n,), -eta)])[None]
    return Observations(queries=queries, targets=targets)


def _unseen_points() -> torch.Tensor:
    """``(1, 512, 3)`` points around the prior's surface on the side the cap did not see (y < -0.2)."""
    g = torch.Generator().manual_seed(1)
    d = torch.randn(512, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    d[:, 1] = -(d[:, 1].abs() * 0.6 + 0.4)
    d = d / d.norm(dim=1, keepdim=True)
    return ((0.37 + 0.1 * torch.rand(512, 1, generator=g)) * d)[None]


def test_adaptation_fits_the_observations_and_leaves_the_trained_decoder_alone():
    dec = _prior()
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    code = torch.zeros(1, 8)
    out = adapt_decoder(dec, code, _sphere_cap(), _loss, AdaptConfig(iterations=300, lr=3e-3), torch_generator(0, "test"))
    assert out.data_loss_after < 0.2 * out.data_loss_before
    assert all(torch.equal(before[k], v) for k, v in dec.state_dict().items())
    assert all(p.requires_grad for p in dec.parameters())
    with torch.no_grad():  # the adapted decoder puts the cap's surface where it was seen
        cap = _sphere_cap(n=50)
        assert _loss(out.decoder(code, cap.queries), cap).mean() < 0.5 * _loss(dec(code, cap.queries), cap).mean()


def test_the_anchor_keeps_the_shape_where_nothing_was_seen():
    dec = _prior()
    code = torch.zeros(1, 8)
    far = _unseen_points()
    drift = {}
    for weight in (0.0, 1.0):
        out = adapt_decoder(dec, code, _sphere_cap(), _loss, AdaptConfig(iterations=300, lr=3e-3, anchor_weight=weight), torch_generator(0, "test"))
        with torch.no_grad():
            drift[weight] = float((out.decoder(code, far).clamp(-0.1, 0.1) - dec(code, far).clamp(-0.1, 0.1)).abs().mean())
    assert drift[1.0] < 0.5 * drift[0.0]


def test_zero_iterations_is_the_trained_decoder_and_batches_are_refused():
    dec = CoordinateMLP(SMALL)
    code = torch.zeros(1, 8)
    cap = _sphere_cap(n=20)
    out = adapt_decoder(dec, code, cap, _loss, AdaptConfig(iterations=0), torch_generator(0))
    with torch.no_grad():
        torch.testing.assert_close(out.decoder(code, cap.queries), dec(code, cap.queries))
    assert out.data_loss_after == out.data_loss_before
    two = Observations(queries=cap.queries.expand(2, -1, -1), targets=cap.targets.expand(2, -1))
    try:
        adapt_decoder(dec, torch.zeros(2, 8), two, _loss, AdaptConfig(iterations=1), torch_generator(0))
    except ValueError as e:
        assert "one instance" in str(e)
    else:
        raise AssertionError("two instances were adapted at once")
