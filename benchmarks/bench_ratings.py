"""Ratings: dasknmf's defaults against Spark ALS, time to the best held-out RMSE.

On the built-in ratings data (:func:`dasknmf.datasets.ratings`, rank 10, noise 0.3)
at two sizes, 20 % of the ratings held out at random (the same split for both), in
one run on the same cores:

* Spark ALS (``pyspark``, ``local[N]``, ``nonnegative=True``, rank 10) over a small
  grid: ``regParam`` in {0.01, 0.05} × 10 and 20 iterations; its best held-out
  RMSE and the wall time of the fit that reached it;
* ``dasknmf.NMF(10, missing="ignore", alpha_weighted=0.03, max_iter=20)``, the
  README's ratings settings (solver ``'auto'``: masked ALS), in memory and out of core
  (``persist=False`` from a store written to a temporary directory), and with
  ``validation=0.05`` (early stopping, ``tol=1e-3``, up to 50 sweeps).

Wall time is the ``fit`` call (Spark: ``ALS.fit`` on a cached DataFrame, the JVM
started and warmed up before; dasknmf: ``NMF.fit``, numba compiled before). Held-out
RMSE is Spark's unclipped prediction and dasknmf's default (clipped to the observed
rating range; the unclipped figure is printed too). Spark is optional: without
``pyspark`` and a Java runtime (``pip install pyspark``; ``apt-get install
default-jre-headless``) its rows are skipped and the ratios are ``n/a``.

Run: ``python -m benchmarks.bench_ratings`` (``--small`` for one small size,
``--smoke`` for a few seconds without Spark).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import dasknmf
from benchmarks.common import machine
from dasknmf.datasets import ratings

#: (users, items, ratings drawn) of the two sizes; the second is issue 19's data.
SIZES = [(20_000, 2_000, 500_000), (50_000, 5_000, 2_000_000)]
SMALL = [(10_000, 1_000, 200_000)]
SMOKE = [(600, 200, 12_000)]
REG_PARAMS = (0.01, 0.05)
SPARK_ITERATIONS = (10, 20)
RANK = 10


@dataclass
class Row:
    size: int
    fit: str
    seconds: float
    train: float
    held_out: float
    note: str = ""


def split(X: sp.csr_matrix, fraction: float = 0.2, seed: int = 0):
    """Train matrix and held-out ``(rows, cols, values)``, entry by entry."""
    coo = X.tocoo()
    held = np.random.default_rng(seed).random(coo.nnz) < fraction
    train = sp.csr_matrix(
        (coo.data[~held], (coo.row[~held], coo.col[~held])), shape=X.shape, dtype=X.dtype
    )
    return train, (coo.row[held], coo.col[held], coo.data[held])


def dasknmf_rows(train, test, nnz: int, store: str) -> list[Row]:
    settings = dict(n_components=RANK, missing="ignore", alpha_weighted=0.03, random_state=0)
    fits = [
        ("dasknmf defaults (ALS, 20 sweeps)", train, dict(max_iter=20)),
        ("same, persist=False (store)", store, dict(max_iter=20, persist=False)),
        (
            "same, validation=0.05, tol=1e-3",
            train,
            dict(max_iter=50, validation=0.05, tol=1e-3),
        ),
    ]
    rows = []
    for name, X, extra in fits:
        model = dasknmf.NMF(**settings, **extra)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        seconds = time.perf_counter() - start
        held_out, train_rmse = model.rmse(test), model.rmse(train)
        model.set_params(clip=False)
        unclipped = model.rmse(test)
        note = f"{model.n_iter_} sweeps, unclipped {unclipped:.4f}"
        if extra.get("validation"):
            note = f"best at {model.best_iteration_} of {note}"
        rows.append(Row(nnz, name, seconds, train_rmse, held_out, note))
    return rows


def spark_session(cores: int):
    """A local Spark session, or ``None`` when pyspark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    try:
        spark = (
            SparkSession.builder.master(f"local[{cores}]")
            .appName("dasknmf-bench-ratings")
            .config("spark.driver.memory", "4g")
            .config("spark.sql.shuffle.partitions", str(2 * cores))
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # ALS's lineage grows with its iterations: without checkpoints (which
            # need a directory) 20 iterations overflow the JVM's stack.
            .config("spark.driver.extraJavaOptions", "-Xss16m")
            .getOrCreate()
        )
        checkpoints = tempfile.mkdtemp(prefix="spark-checkpoints-")
        atexit.register(shutil.rmtree, checkpoints, True)
        spark.sparkContext.setCheckpointDir(checkpoints)
    except Exception as exc:  # no Java runtime: the JVM does not start
        print(f"Spark skipped: {exc}")
        return None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_rows(spark, train, test, nnz: int) -> list[Row]:
    import pandas as pd
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS

    def frame(rows, cols, values):
        data = pd.DataFrame({"user": rows.astype(np.int32), "item": cols.astype(np.int32)})
        data["rating"] = values.astype(np.float32)
        return spark.createDataFrame(data).cache()

    coo = train.tocoo()
    train_df, test_df = frame(coo.row, coo.col, coo.data), frame(*test)
    train_df.count(), test_df.count()
    evaluator = RegressionEvaluator(metricName="rmse", labelCol="rating")
    rows = []
    for reg in REG_PARAMS:
        for iterations in SPARK_ITERATIONS:
            als = ALS(
                rank=RANK,
                maxIter=iterations,
                regParam=reg,
                nonnegative=True,
                userCol="user",
                itemCol="item",
                ratingCol="rating",
                coldStartStrategy="drop",
                seed=0,
            )
            start = time.perf_counter()
            model = als.fit(train_df)
            seconds = time.perf_counter() - start
            held_out = evaluator.evaluate(model.transform(test_df))
            train_rmse = evaluator.evaluate(model.transform(train_df))
            name = f"Spark ALS regParam {reg}, {iterations} iterations"
            rows.append(Row(nnz, name, seconds, train_rmse, held_out))
    train_df.unpersist(), test_df.unpersist()
    return rows


def warm_up(spark) -> None:
    """Compile dasknmf's numba loops and warm the JVM, outside the timings."""
    X, _, _ = ratings(300, 100, 3_000, rank=RANK, seed=2)
    train, test = split(X)
    model = dasknmf.NMF(RANK, missing="ignore", alpha_weighted=0.03, max_iter=2, tol=0)
    model.fit(train)
    if spark is not None:
        spark_rows(spark, train, test, 0)


def ratio(value: float, reference: float | None) -> str:
    return "n/a" if reference is None else f"{value / reference:.2f}"


def print_table(rows: list[Row]) -> None:
    print(
        "| ratings | fit | wall s | train RMSE | held-out RMSE | time / Spark best | "
        "held-out RMSE / Spark best | note |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in sorted({r.size for r in rows}):
        here = [r for r in rows if r.size == size]
        spark = [r for r in here if r.fit.startswith("Spark")]
        best = min(spark, key=lambda r: r.held_out) if spark else None
        for r in here:
            note = "; ".join(filter(None, [r.note, "Spark's best" if r is best else ""]))
            print(
                f"| {size:,} | {r.fit} | {r.seconds:.2f} | {r.train:.4f} | {r.held_out:.4f} | "
                f"{ratio(r.seconds, best and best.seconds)} | "
                f"{ratio(r.held_out, best and best.held_out)} | {note} |"
            )


def print_scaling(rows: list[Row]) -> None:
    """Time growth between the two sizes against the growth in ratings."""
    sizes = sorted({r.size for r in rows})
    if len(sizes) < 2:
        return
    print("\n| fit | ratings × | time × |")
    print("| --- | --- | --- |")
    small, large = sizes[0], sizes[-1]
    by = {(r.size, r.fit): r for r in rows}
    for fit in dict.fromkeys(r.fit for r in rows if r.size == small):
        if (large, fit) in by:
            growth = by[(large, fit)].seconds / by[(small, fit)].seconds
            print(f"| {fit} | {large / small:.2f} | {growth:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="one small size")
    parser.add_argument("--smoke", action="store_true", help="tiny, no Spark (tests)")
    parser.add_argument("--cores", type=int, default=2, help="Spark's local[N] (default 2)")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else SMALL if args.small else SIZES
    spark = None if args.smoke else spark_session(args.cores)
    print(machine("dask", "numpy", "scipy") + (f", pyspark {spark.version}" if spark else ""))
    warm_up(spark)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for users, items, drawn in sizes:
            X, _, _ = ratings(users, items, drawn, rank=RANK, seed=1)
            train, test = split(X)
            store = os.path.join(tmp, f"train-{users}.zarr")
            dasknmf.write_matrix(train, store, chunks=(max(users // 4, 1), items))
            if spark is not None:
                rows += spark_rows(spark, train, test, X.nnz)
            rows += dasknmf_rows(train, test, X.nnz, store)
    print_table(rows)
    print_scaling(rows)
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main()
