"""The two latent spaces: interpolation between images, a t-SNE map, and numbers for cluster quality.

Cluster quality is measured, not eyeballed, on codes labelled by digit:

- ``knn_accuracy``: a k-nearest-neighbour classifier fitted on the training images' codes (AE: their
  encodings; AD: their learned codes) predicts the digits of the test images' codes (AE: encodings;
  AD: codes fitted with the decoder frozen). High when codes of one digit lie together *and* test
  codes land where training codes of their digit are.
- ``silhouette``: the silhouette score of the test codes grouped by digit (Euclidean; -1 to 1, higher
  = tighter, better separated clusters). Invariant to a global scale of the codes, so the two
  models' spaces compare directly. ``silhouette_train``: the same on (a sample of) training codes.
"""

from __future__ import annotations

import numpy as np
import torch


def interpolate(za: torch.Tensor, zb: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - α) za + α zb``: ``za, zb: (P, D)``, ``alphas: (A,)`` → ``(P, A, D)``."""
    a = alphas.to(za.dtype)[None, :, None]
    return (1.0 - a) * za[:, None, :] + a * zb[:, None, :]


def tsne_embedding(codes: torch.Tensor, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """``codes: (N, D)`` → ``(N, 2)`` t-SNE embedding (scikit-learn, PCA initialisation, seeded)."""
    from sklearn.manifold import TSNE

    x = codes.detach().cpu().double().numpy()
    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3.0))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def cluster_scores(
    train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor, test_labels: torch.Tensor, k: int = 5, seed: int = 0, max_train_silhouette: int = 2000
) -> dict[str, float]:
    """``{"knn_accuracy", "silhouette", "silhouette_train", "knn_k"}`` (see module docstring).

    ``train_codes: (N, D)``, ``test_codes: (M, D)``; labels ``(N,)``, ``(M,)``."""
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    xtr, ytr = train_codes.detach().cpu().double().numpy(), train_labels.cpu().numpy()
    xte, yte = test_codes.detach().cpu().double().numpy(), test_labels.cpu().numpy()
    if len(np.unique(yte)) < 2 or len(np.unique(ytr)) < 2:
        raise ValueError("cluster scores need at least two digits among the codes")
    knn = KNeighborsClassifier(n_neighbors=min(k, len(xtr))).fit(xtr, ytr)
    sample = min(max_train_silhouette, len(xtr))
    return {
        "knn_accuracy": float(knn.score(xte, yte)),
        "silhouette": float(silhouette_score(xte, yte)),
        "silhouette_train": float(silhouette_score(xtr, ytr, sample_size=sample if sample < len(xtr) else None, random_state=seed)),
        "knn_k": int(min(k, len(xtr))),
    }
