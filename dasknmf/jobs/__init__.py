"""Batch jobs from YAML files: the library behind ``dasknmf run``, ``resume`` and ``validate``.

- :mod:`~dasknmf.jobs.config`: the job schema (frozen dataclasses);
  :mod:`~dasknmf.jobs.loading`: ``load_config`` and ``parse_config``;
  :mod:`~dasknmf.jobs.rules` (each key's rule), :mod:`~dasknmf.jobs.sections` (the
  checks spanning several keys), :mod:`~dasknmf.jobs.paths` (what a path names),
  :mod:`~dasknmf.jobs.overrides` and :mod:`~dasknmf.jobs.validation` check it and
  collect every problem;
- :mod:`~dasknmf.jobs.runner`: ``run_job`` and ``resume_job``, which only wire the
  library together; :mod:`~dasknmf.jobs.inputs` opens the input,
  :mod:`~dasknmf.jobs.workarea` is the hidden folder a job works in, and
  :mod:`~dasknmf.jobs.checkpoints` writes the fit's state there and reads it back;
- :mod:`~dasknmf.jobs.cluster`: the scheduler of a job, set up and torn down;
  :mod:`~dasknmf.jobs.worker_memory`: whether its workers can hold the fit's tasks;
- :mod:`~dasknmf.jobs.outputs` and :mod:`~dasknmf.jobs.report`: the output directory,
  written atomically, and what goes into it.

The subcommands, which parse arguments and print, are the command line's
(:mod:`dasknmf.cli.jobs`); nothing here knows of argparse or of the terminal.

Every key of the schema is documented in ``configs/README.md``.
"""
