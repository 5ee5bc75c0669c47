"""The domain-free autodecoder: latent table, code prior, joint training, batched fitting, checkpoints.

The core never names shapes or pixels. It sees a decoder ``f(codes, queries) -> predictions``, an
:class:`~sdf_autodec.core.observations.Observations` batch and a per-element loss supplied by the domain.
"""
