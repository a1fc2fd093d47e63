"""Object stores: S3 (any S3-compatible server) and a local folder with the same bucket/key layout."""
