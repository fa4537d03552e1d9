"""Terraform modules to publish in tests (no providers needed, so `terraform init` stays offline)."""

from __future__ import annotations

from pathlib import Path

ROOT_MAIN = """
variable "name" {
  type        = string
  description = "Name of the network"
  default     = "%(default)s"
}

module "subnets" {
  source = "./modules/subnets"
  prefix = var.name
}

output "id" {
  value = "%(marker)s-${var.name}"
}

output "subnets" {
  value = module.subnets.names
}
"""

SUBNETS_MAIN = """
variable "prefix" {
  type = string
}

output "names" {
  value = ["${var.prefix}-a", "${var.prefix}-b"]
}
"""


def write_module(root: Path, marker: str = "v1", default: str = "main") -> Path:
    """A module with a nested submodule under modules/subnets, and a README."""
    (root / "modules" / "subnets").mkdir(parents=True, exist_ok=True)
    (root / "main.tf").write_text(ROOT_MAIN % {"marker": marker, "default": default})
    (root / "modules" / "subnets" / "main.tf").write_text(SUBNETS_MAIN)
    (root / "README.md").write_text(f"# Network module\n\nBuilds a network ({marker}).\n")
    return root


def write_root_config(workdir: Path, source: str, version: str | None) -> Path:
    """A root configuration that calls the registry module, and another via ``//modules/subnets``."""
    workdir.mkdir(parents=True, exist_ok=True)
    version_line = f'  version = "{version}"\n' if version else ""
    (workdir / "main.tf").write_text(
        f'module "net" {{\n  source = "{source}"\n{version_line}}}\n\n'
        'output "id" {\n  value = module.net.id\n}\n'
        'output "subnets" {\n  value = module.net.subnets\n}\n'
    )
    return workdir
