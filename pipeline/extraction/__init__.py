"""Stage one: the one loop from any source to a feature store (:mod:`.loop`), and the same as
shards on a Dask cluster (:mod:`.sharded`).
"""
