"""The image domain: MNIST, an autoencoder against an autodecoder, masked completion, latent spaces.

``idx`` (reader) → ``data`` (padded, seeded splits) → ``masks`` → ``train`` (both models) →
``complete`` (masked experiments) and ``latent_space`` → ``report`` (figures, results.json,
report.md) → ``run`` (the ``sdf-autodec mnist`` stages).
"""
