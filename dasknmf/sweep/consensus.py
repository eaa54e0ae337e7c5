"""Stability and consensus of replicated factorisations, as cNMF defines them.

Kotliar et al. (2019, cNMF): the ``R`` replicates of rank ``k`` give ``R · k``
components (rows of ``H``). Each is scaled to unit L2 norm; k-means groups them into
``k`` clusters. A component far from its neighbours (its mean distance to its
``L = local_neighborhood · R`` nearest other components above ``density_threshold``)
is an outlier and is left out. The consensus component of a cluster is the median
of its remaining members; the *stability* of ``k`` is the silhouette score of the
clustering (1: every replicate found the same components; near 0: no structure).
Like cNMF's ``k_selection_plot``, stability is computed before outliers are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

#: k-means restarts, and its seed (the clustering must not depend on the fit's seed).
KMEANS_INIT, KMEANS_SEED = 10, 1


def unit_rows(components: np.ndarray) -> np.ndarray:
    """The rows of ``components`` scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(components, axis=1, keepdims=True)
    return np.divide(components, norms, out=np.zeros_like(components), where=norms > 0)


def distances_from_gram(gram: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows from their Gram matrix ``X Xᵀ``."""
    sq = np.diag(gram)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))


def span_coordinates(gram: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``X`` in an orthonormal basis of their span, from
    ``X Xᵀ``: ``p`` points of any dimension become ``p × p`` with every distance
    (and so k-means and the silhouette) unchanged."""
    values, vectors = np.linalg.eigh(gram)
    return vectors * np.sqrt(np.maximum(values, 0.0))


def local_density(distances: np.ndarray, neighbours: int) -> np.ndarray:
    """Mean distance of each point to its ``neighbours`` nearest other points, from
    the matrix of their ``distances``."""
    distances = distances.copy()
    np.fill_diagonal(distances, np.inf)
    neighbours = min(max(neighbours, 1), len(distances) - 1)
    nearest = np.partition(distances, neighbours - 1, axis=1)[:, :neighbours]
    return nearest.mean(axis=1)


@dataclass(frozen=True)
class Clustering:
    """The k-means clustering of ``R`` replicates' unit-norm components (which are
    not kept: ``R·k × n`` float64, twice the components themselves).

    Attributes
    ----------
    labels : numpy.ndarray
        Cluster of each component.
    density : numpy.ndarray
        Local density of each component (:func:`local_density`).
    stability : float
        Silhouette score of the clustering (NaN when ``k = 1`` or with one replicate:
        the silhouette is defined for 2 to ``R·k − 1`` clusters).
    """

    labels: np.ndarray
    density: np.ndarray
    stability: float


def cluster_components(
    components: np.ndarray, k: int, n_replicates: int, local_neighborhood: float
) -> Clustering:
    """Cluster the stacked components (``R·k × n``) of ``n_replicates`` replicates of
    rank ``k``."""
    unit = unit_rows(np.asarray(components, dtype=np.float64))
    gram = unit @ unit.T
    # cNMF's neighbourhood: a share of the replicates. Below one neighbour (few
    # replicates) there is no density to speak of, and no component is an outlier.
    neighbours = round(local_neighborhood * n_replicates)
    has_density = neighbours >= 1 and len(unit) > 1
    distances = distances_from_gram(gram)
    density = local_density(distances, neighbours) if has_density else np.zeros(len(unit))
    if k == 1:
        return Clustering(np.zeros(len(unit), dtype=int), density, float("nan"))
    # k-means in the span of the R·k components: the same clustering as in all n
    # dimensions (distances are kept), n / (R·k) times cheaper.
    points = span_coordinates(gram)
    km = KMeans(n_clusters=k, n_init=KMEANS_INIT, random_state=KMEANS_SEED).fit(points)
    labels = km.labels_
    # The silhouette needs 2 to n − 1 clusters: one replicate (R·k = k) has no spread.
    defined = 1 < len(set(labels)) < len(unit)
    stability = (
        float(silhouette_score(distances, labels, metric="precomputed"))
        if defined
        else float("nan")
    )
    return Clustering(labels, density, stability)


def consensus_components(
    clustering: Clustering, components: np.ndarray, k: int, density_threshold: float
) -> np.ndarray:
    """The ``k × n`` consensus: per cluster, the median of its unit-norm members whose
    density is at most ``density_threshold``, scaled to the median norm of those
    members in ``components`` (so that it has a replicate's scale).

    Clusters are ordered by the position of their first member, so that a sweep
    whose replicates agree lists them in the first replicate's order.

    Raises
    ------
    ValueError
        A cluster has no member left under the threshold (the message says which).
    """
    norms = np.linalg.norm(components, axis=1)
    keep = clustering.density <= density_threshold
    order = sorted(range(k), key=lambda c: int(np.flatnonzero(clustering.labels == c)[0]))
    out = np.empty((k, components.shape[1]), dtype=np.float64)
    for row, c in enumerate(order):
        members = (clustering.labels == c) & keep
        if not members.any():
            raise ValueError(
                f"cluster {row} of k = {k} has no component with a local density "
                f"<= density_threshold = {density_threshold} (its members' densities: "
                f"{np.round(clustering.density[clustering.labels == c], 3).tolist()}); "
                "raise density_threshold"
            )
        unit = unit_rows(np.asarray(components[members], dtype=np.float64))
        out[row] = np.median(unit, axis=0) * np.median(norms[members])
    return np.maximum(out, 0.0)
