"""edgernn.train: models, data, BPTT training and checkpoints. Needs torch (``pip install edgernn[train]``).

Import from the submodules (``edgernn.train.model``, ``edgernn.train.checkpoint``, ...):
this package's ``__init__`` imports nothing, so ``edgernn --help`` works without torch.
"""
