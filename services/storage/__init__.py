"""The storage service: primary storage pools (through plugins on the agents), the allocator, and volumes.

`handlers` is its handler table, `queries` answers `pool.list` and `volume.list`, `stats` collects pool
statistics periodically, and `bootstrap` builds it.
"""
