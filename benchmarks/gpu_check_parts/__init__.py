"""Parts of ``benchmarks/gpu_check.py`` (the entry point: its command line and JSON), split by responsibility:
``common`` (scales, variants, helpers, the trainer as the pipeline builds it), ``measure`` (timings and FLOP rates
in this process), ``children`` (the torch.compile and DDP child processes), ``projection`` (the summary and the
projected GPU-hours of Tables 1 and 2). Imported with ``benchmarks/`` on ``sys.path`` (the script puts it there).
"""
