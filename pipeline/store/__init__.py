"""The HDF5 feature store (:mod:`.hdf5`): the only interface between stage one and stage two."""
