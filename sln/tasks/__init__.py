"""Training tasks for the one loop (`sln.train.fit`): each supplies batches, the loss and the evaluation.

`images` (MNIST, Fashion-MNIST and the benchmark's image baselines) and `classify` (the
evaluation bookkeeping shared by every SLN classifier) live here; the time-series task is in
sln/sequence_tasks.py and the character-LM tasks in sln/lm.py, next to their trainers.
"""
