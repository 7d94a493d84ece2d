"""The chunked backup format: fixed-size chunks named by SHA-256, all-zero chunks skipped, a manifest written last.

It is independent of where the bytes live: a `BlobStore` (a directory, an S3 bucket) holds them, and
`ChunkedRepository` backs up, restores, lists and deletes on top of one.
"""
