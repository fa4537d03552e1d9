"""mirror: a self-hosted private Terraform module registry and artifact-mirroring proxy."""

__version__ = "0.1.0"
