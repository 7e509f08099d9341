"""The HDF5 feature store (:mod:`.hdf5`): the only interface between stage one and stage two.

One writer and one checking reader; :mod:`.shards` joins the shards of one extraction.
"""
