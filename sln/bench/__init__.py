"""The benchmarks (`python benchmark.py`, `sln benchmark`): energy and latency of SLN vs baselines.

    schema.py   the JSON document's schema (SCHEMA_ID, JSON_SCHEMA, INT8_SCHEMA) and `validate`
    measure.py  threads, timing, the RAPL meter, weight footprints, the energy estimate of counts
    compare.py  equal-accuracy comparisons (smallest-matching, interpolated) and the headline's pick
    image.py    the image benchmark: SLN through the event engine, ViT / CfC baselines, the whole run
    int8.py     its int8 vs int8 section: SLN through sln.intspec (counted), ViT int8 simulated
    report.py   console tables, Markdown and plots, one path for both precisions
    lm.py       the character-LM benchmark (--task lm)
    sensitivity.py  a benchmark JSON's headline re-priced under each memory model, without retraining
    cli.py      the argument parser and main(argv)

Nothing is imported here, so `sln train` never loads the benchmark's plotting stack. Imports
point down: sln.bench uses model / engine / quant / intspec / baselines / energy, never the
other way round.
"""
