"""The chunked backup format: fixed-size chunks named by SHA-256, all-zero chunks skipped, a manifest written last.

It is independent of where the bytes live: a `BlobStore` (a directory, an S3 bucket) holds them, and
`ChunkedRepository` backs up, restores, lists and deletes on top of one. The layout, readable without strata:

    chunks/<first 3 hex digits>/<sha256>     one chunk: a codec byte (0 raw, 1 zlib, 2 zstd) and the payload;
                                             the name is the SHA-256 of the plain bytes
    backups/<backup id>.manifest.json.gz     gzip'd JSON: format name and version, backup and volume ids, size,
                                             chunk size, parent id, created_at, and every chunk's digest in
                                             order (null for an all-zero chunk, restored as a hole)
    backups/<backup id>.summary.json         the same without the chunk list, for listings (written just
                                             before the manifest; without a manifest it means nothing)
    locks/backup/<backup id>                 a backup in flight (holds off sweeps)
    locks/sweep/<id>                         a sweep in flight (holds off new backups)
    images/...                               templates and ISOs: the same layout again, apart from backups

Invariants: a manifest is written only after every chunk it names is stored, so a crash leaves at most
unreferenced chunks (freed by the next sweep); a restore checks every chunk against its name; a sweep frees only
chunks no manifest names, and none while a backup is in flight.
"""
