"""Per-tile math: the only layer that touches the numbers inside one block.

Every kernel takes and returns arrays of a single array module (NumPy/SciPy on the
CPU, CuPy/cupyx on a GPU); the module is found from the inputs
(:func:`dasknmf.devices.array_module`), never imported by name, so the same graph runs
on either device. Nothing in this layer knows about dask: :mod:`dasknmf.products` and
the solvers wire these kernels into graphs.

Orientation: ``V`` tiles are ``r × c`` (dense or CSR), ``W`` blocks ``r × k``, ``H``
blocks ``k × c``. One module per concept:

- :mod:`~dasknmf.kernels.tiles`: products of a tile with a factor block, Gram matrices,
  inner products; the ``Tile``/``Array`` aliases and :data:`~dasknmf.kernels.tiles.EPSILON`;
- :mod:`~dasknmf.kernels.penalty`: the elastic-net :class:`~dasknmf.kernels.penalty.Penalty`;
- :mod:`~dasknmf.kernels.steps`: the multiplicative step every MU rule ends with;
- :mod:`~dasknmf.kernels.frobenius`: the MU and HALS rules and the row-block passes of
  the Frobenius loss;
- :mod:`~dasknmf.kernels.sampled`: ``W_i H_j`` at a sparse tile's stored entries (the
  SDDMM), compiled by :mod:`~dasknmf.kernels.jit` for NumPy inputs;
- :mod:`~dasknmf.kernels.kl`, :mod:`~dasknmf.kernels.beta`: the Kullback–Leibler and
  general β-divergence updates;
- :mod:`~dasknmf.kernels.masked`: the β updates on observed entries only;
- :mod:`~dasknmf.kernels.als`: per-row and per-column Grams over observed entries and
  their exact non-negative least squares (the ratings solver);
- :mod:`~dasknmf.kernels.stats`: a tile's summary for validation and scaling.
"""
