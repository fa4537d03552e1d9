"""The BlobStore contract's tests, collected by ``mirror.testing.blob_contract``."""
