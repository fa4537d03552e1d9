"""Contract suites a backend is held to, shipped as pytest plug-ins (this package imports pytest).

``mirror.testing.store_contract`` runs the MetadataStore contract against every registered
metadata backend, ``mirror.testing.blob_contract`` the BlobStore contract against every registered
blob store (built-ins and entry points alike). Enable one in a test module::

    pytest_plugins = ["mirror.testing.store_contract"]

and its suite is collected under that module. Each plug-in's docstring names the fixtures a
conftest (or that module) overrides to set a backend up.
"""

import pytest

# the suites' asserts explain their failures like a test module's (they are imported as plug-ins)
pytest.register_assert_rewrite(
    "mirror.testing.store_contract",
    "mirror.testing.store_suite",
    "mirror.testing.blob_contract",
    "mirror.testing.blob_suite",
)
