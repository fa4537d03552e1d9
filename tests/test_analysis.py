"""mirror.formats.analysis against real tar.gz archives built in tmp_path."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from mirror.formats.analysis import analyze_archive
from mirror.formats.archive import ArchiveLimits, check_archive, pack_directory

VARIABLES_TF = r'''
variable "name" {
  type        = string
  description = "The \"name\" of it"
}
variable "count_of" {
  type    = number
  default = 3
}
variable "ratio" { default = 1.5 }
variable "enabled" {
  type    = bool
  default = false
}
variable "tags" {
  type    = map(number)
  default = { "a b" = 1, c = 2 }
}
variable "zones" {
  type    = list(string)
  default = ["a", "b"]
}
variable "nothing" { default = null }
variable "computed" { default = "${var.name}-x" }
variable "settings" {
  type = object({
    size = number
    mode = optional(string, "fast")
  })
  description = <<-EOT
    First line with "quotes".
      Indented ${var.name}
  EOT
  default = { size = 1, mode = "slow", extra = [true, null, "s"] }
}
variable "escaped" {
  description = "one\ntwo"
  sensitive   = true
  validation {
    condition     = length(var.escaped) > 0
    error_message = "Must not be empty."
  }
}
'''

MAIN_TF = '''
terraform {
  required_version = ">= 1.3"
  required_providers {
    aws    = { source = "hashicorp/aws", version = ">= 5.0" }
    random = ">= 2.0"
    acme   = { source = "registry.terraform.io/example/acme" }
  }
}
module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "~> 5.0"
}
module "local" { source = "./modules/one" }
resource "aws_s3_bucket" "this" { bucket = var.name }
resource "aws_iam_role" "this" { name = "r" }
resource "random_id" "a" {}
data "aws_caller_identity" "current" {}
output "bucket" {
  description = "The bucket"
  value       = aws_s3_bucket.this.id
}
output "secret" {
  value     = var.escaped
  sensitive = true
}
'''


def make_archive(tmp_path: Path, files: dict[str, str | bytes], name: str = "module.tar.gz") -> Path:
    """A .tar.gz holding ``files`` (path -> content) as regular files, in the given order."""
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for member_name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(member_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def analyze(tmp_path: Path, files: dict[str, str | bytes]) -> dict[str, Any]:
    result = analyze_archive(make_archive(tmp_path, files), ArchiveLimits())
    json.dumps(result)  # JSON-able throughout
    return result


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_inputs_types_defaults_and_descriptions(tmp_path: Path) -> None:
    root = analyze(tmp_path, {"variables.tf": VARIABLES_TF})["root"]
    inputs = by_name(root["inputs"])
    assert [i["name"] for i in root["inputs"]] == sorted(inputs)
    assert inputs["name"] == {
        "name": "name",
        "type": "string",
        "description": 'The "name" of it',
        "default": None,
        "required": True,
        "sensitive": False,
        "nullable": True,
    }
    assert (inputs["count_of"]["type"], inputs["count_of"]["default"], inputs["count_of"]["required"]) == (
        "number",
        3,
        False,
    )
    assert (inputs["ratio"]["type"], inputs["ratio"]["default"]) == ("", 1.5)
    assert (inputs["enabled"]["type"], inputs["enabled"]["default"]) == ("bool", False)
    assert (inputs["tags"]["type"], inputs["tags"]["default"]) == ("map(number)", {"a b": 1, "c": 2})
    assert (inputs["zones"]["type"], inputs["zones"]["default"]) == ("list(string)", ["a", "b"])
    # an explicit null default makes the variable optional
    assert (inputs["nothing"]["default"], inputs["nothing"]["required"]) == (None, False)
    assert inputs["computed"]["default"] == "${var.name}-x"
    settings = inputs["settings"]
    assert settings["type"].startswith("object(") and "optional(string" in settings["type"]
    assert settings["description"] == 'First line with "quotes".\n  Indented ${var.name}\n'
    assert settings["default"] == {"size": 1, "mode": "slow", "extra": [True, None, "s"]}
    assert inputs["escaped"]["description"] == "one\ntwo"
    assert inputs["escaped"]["required"] is True
    assert inputs["escaped"]["sensitive"] is True


def test_outputs_modules_providers_and_resources(tmp_path: Path) -> None:
    root = analyze(tmp_path, {"main.tf": MAIN_TF})["root"]
    assert root["outputs"] == [
        {"name": "bucket", "description": "The bucket"},
        {"name": "secret", "description": ""},
    ]
    assert root["dependencies"] == [
        {"name": "local", "source": "./modules/one", "version": ""},
        {"name": "vpc", "source": "terraform-aws-modules/vpc/aws", "version": "~> 5.0"},
    ]
    assert root["provider_dependencies"] == [
        {"name": "acme", "namespace": "example", "source": "registry.terraform.io/example/acme", "version": ""},
        {"name": "aws", "namespace": "hashicorp", "source": "hashicorp/aws", "version": ">= 5.0"},
        {"name": "random", "namespace": "hashicorp", "source": "hashicorp/random", "version": ">= 2.0"},
    ]
    # data sources are not resources; sorted by name, then type
    assert root["resources"] == [
        {"name": "a", "type": "random_id"},
        {"name": "this", "type": "aws_iam_role"},
        {"name": "this", "type": "aws_s3_bucket"},
    ]
    assert (root["path"], root["name"], root["readme"], root["empty"]) == ("", "", "", False)


def test_submodules_and_directories_that_are_not(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel, text in {
        "main.tf": 'module "one" { source = "./modules/one" }\n',
        "README.md": "# root\n",
        "modules/two/main.tf": 'output "two" { value = 2 }\n',
        "modules/one/variables.tf": 'variable "x" { type = string }\n',
        "modules/one/outputs.tf": 'output "y" { value = var.x }\n',
        "modules/one/README.md": "# One\n\nThe first.\n",
        "modules/one/nested/deep.tf": 'variable "deep" {}\n',  # not directly under modules/
        "modules/docs/README.md": "no .tf here\n",  # not a submodule
        "examples/basic/main.tf": 'variable "ex" {}\n',
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    archive = tmp_path / "m.tar.gz"
    with archive.open("wb") as out:
        pack_directory(src, out)
    check_archive(archive, ArchiveLimits())

    result = analyze_archive(archive, ArchiveLimits())
    assert result["errors"] == []
    assert [m["path"] for m in result["submodules"]] == ["modules/one", "modules/two"]
    one, two = result["submodules"]
    assert (one["name"], one["readme"], one["empty"]) == ("one", "# One\n\nThe first.\n", False)
    assert [i["name"] for i in one["inputs"]] == ["x"]
    assert [o["name"] for o in one["outputs"]] == ["y"]
    assert (two["name"], two["readme"], [o["name"] for o in two["outputs"]]) == ("two", "", ["two"])
    assert [d["name"] for d in result["root"]["dependencies"]] == ["one"]
    assert result["root"]["inputs"] == []  # examples/ and nested dirs do not leak into the root


def test_submodule_readme_is_truncated(tmp_path: Path) -> None:
    result = analyze(tmp_path, {"main.tf": "", "modules/a/main.tf": "", "modules/a/README.md": "é" * 40_000})
    readme = result["submodules"][0]["readme"]
    assert readme == "é" * 32 * 1024  # 64 KiB of two-byte characters


def test_broken_file_is_reported_and_the_rest_still_counts(tmp_path: Path) -> None:
    result = analyze(
        tmp_path,
        {
            "main.tf": 'variable "ok" {}\n',
            "modules/bad/good.tf": 'output "fine" { value = 1 }\n',
            "modules/bad/main.tf": 'resource "x" "y" {\n  a = \n',
        },
    )
    assert len(result["errors"]) == 1
    assert result["errors"][0].startswith("modules/bad/main.tf: ")
    assert "line" in result["errors"][0]
    bad = result["submodules"][0]
    assert (bad["path"], [o["name"] for o in bad["outputs"]], bad["resources"]) == ("modules/bad", ["fine"], [])
    assert [i["name"] for i in result["root"]["inputs"]] == ["ok"]


def test_tf_json_files_are_analysed(tmp_path: Path) -> None:
    result = analyze(
        tmp_path,
        {"main.tf": 'variable "a" {}\n', "extra.tf.json": json.dumps({"variable": {"b": {}}}), "notes.txt": "x"},
    )
    assert [i["name"] for i in result["root"]["inputs"]] == ["a", "b"]
    assert result["errors"] == []


def test_no_root_tf_means_empty_root(tmp_path: Path) -> None:
    result = analyze(tmp_path, {"README.md": "hi", "modules/a/main.tf": 'variable "v" {}\n'})
    assert result["root"]["empty"] is True
    assert result["root"]["inputs"] == []
    assert [m["path"] for m in result["submodules"]] == ["modules/a"]


def test_oversized_file_is_skipped_with_an_error(tmp_path: Path) -> None:
    big = 'variable "big" {}\n' + "#" * (1024 * 1024) + "\n"
    result = analyze(tmp_path, {"big.tf": big, "main.tf": 'variable "small" {}\n'})
    assert [i["name"] for i in result["root"]["inputs"]] == ["small"]
    assert result["errors"] == ["big.tf: file is larger than 1 MiB; skipped"]


def test_output_is_deterministic_whatever_the_member_order(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "b.tf": 'variable "z" {}\nvariable "m" {}\nresource "t" "b" {}\n',
        "a.tf": 'variable "a" {}\nresource "t" "a" {}\nmodule "q" { source = "./q" }\n',
        "modules/y/main.tf": 'output "o2" { value = 1 }\noutput "o1" { value = 1 }\n',
        "modules/x/main.tf": 'variable "v" {}\n',
        "./modules/x/broken.tf": "{{{",
        "modules/y/broken.tf": "}}}",
    }
    forward = analyze_archive(make_archive(tmp_path, files, "f.tar.gz"), ArchiveLimits())
    backward = analyze_archive(make_archive(tmp_path, dict(reversed(files.items())), "b.tar.gz"), ArchiveLimits())
    assert json.dumps(forward, sort_keys=True) == json.dumps(backward, sort_keys=True)
    assert [i["name"] for i in forward["root"]["inputs"]] == ["a", "m", "z"]
    assert [m["path"] for m in forward["submodules"]] == ["modules/x", "modules/y"]
    assert [o["name"] for o in forward["submodules"][1]["outputs"]] == ["o1", "o2"]
    assert [e.split(":")[0] for e in forward["errors"]] == ["modules/x/broken.tf", "modules/y/broken.tf"]
