"""What a feature store is made from, behind one interface (:mod:`.base`: list, fingerprint,
iterate): an image folder (:mod:`.folder`), CIFAR-10 class pairs (:mod:`.cifar10`), the
paper's spiral benchmark (:mod:`.spiral`), its photonic QC and QQ data sets
(:mod:`.photonic`, :mod:`.photonic`); :mod:`.catalog` says which one params mean.
"""
