"""The MetadataStore contract's tests, collected by ``mirror.testing.store_contract``."""
