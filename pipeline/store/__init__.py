"""The HDF5 feature store (:mod:`.hdf5`): the only interface between stage one and stage two.

One writer and one checking reader; :mod:`.meta` checks the root attributes, :mod:`.split`
each split's datasets (declared shapes and sizes first, then the Fletcher-32 checksums on
read); :mod:`.shards` joins the shards of one extraction.
"""
