"""The executor's state, partitioned like its work: the command ledger's partitions and
the command index, restored into a local store when partitions are assigned."""
