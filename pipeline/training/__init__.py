"""Stage two: the features a head reads (:mod:`.data`), the training loop (:mod:`.loop`), its
optimisers (:mod:`.optim`) and outputs (:mod:`.outputs`), one run from params (:mod:`.run`),
sweeps (:mod:`.sweep`) and their folders (:mod:`.sweep_files`), and the mean ± std tables
(:mod:`.summary`, :mod:`.compare`).
"""
