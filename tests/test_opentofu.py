"""OpenTofu files: modules whose configuration is in ``.tofu``, ``.tf.json`` or ``.tofu.json`` files
are accepted and analysed like ``.tf`` ones, read as OpenTofu reads a directory (a ``.tofu`` file
hides the ``.tf`` file of the same name; override files merge last).

Archives are real tar.gz files; publishing goes through the upload API of the real app, whose
analysis runs in real child processes.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from mirror.domain.errors import InvalidArchive
from mirror.formats.analysis import analyze_archive
from mirror.formats.archive import ArchiveLimits, check_archive, strip_top_level_directory
from mirror.formats.tf_json import MAX_DEPTH
from mirror.services.analysis import Analyzer
from tests.test_hardening_analysis import tar_gz

ADDR = "acme/tofu/aws"

VARIABLES_TOFU = '''
variable "name" {
  type        = string
  description = "The name"
}
variable "size" {
  type      = number
  default   = 2
  sensitive = true
  nullable  = false
}
'''

MAIN_TOFU = '''
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.0" }
  }
}
module "net" {
  source  = "example/net/aws"
  version = "~> 1.0"
}
resource "aws_s3_bucket" "this" { bucket = var.name }
output "bucket" {
  description = "The bucket"
  value       = aws_s3_bucket.this.id
}
'''

#: a JSON module declaring in every form the JSON syntax allows, with comments at every level
MAIN_TF_JSON: dict[str, Any] = {
    "//": "generated",
    "terraform": [
        {
            "//": "the providers",
            "required_version": ">= 1.3",
            "required_providers": [
                {"aws": {"source": "hashicorp/aws", "version": ">= 5.0"}, "//": "x"},
                {"random": ">= 3.0"},
            ],
        }
    ],
    "variable": {
        "//": "inputs",
        "name": {"type": "string", "description": "The name", "//": "c"},
        "tags": {
            "type": "map(string)",
            "default": {"team": "a", "note": "${upper(\"x\")}"},
            "description": "<<EOT\nnot a heredoc\nEOT",
            "sensitive": True,
            "nullable": False,
        },
        "nothing": {"default": None},
    },
    "output": [{"bucket": {"description": "The bucket", "value": "${aws_s3_bucket.this.id}"}}, {"count": {"value": 1}}],
    "module": {"net": {"source": "example/net/aws", "version": "~> 1.0"}},
    "resource": {
        "//": "resources",
        "aws_s3_bucket": {"this": {"bucket": "${var.name}"}, "//": "c"},
        "random_id": [{"a": {"byte_length": 4}}, {"b": [{"byte_length": 8}]}],
    },
    "data": {"aws_caller_identity": {"current": {}}},
    "locals": {"x": 1},
}


def make_archive(tmp_path: Path, files: dict[str, str], name: str = "module.tar.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(tar_gz(files))
    return path


def analyze(tmp_path: Path, files: dict[str, str]) -> dict[str, Any]:
    path = make_archive(tmp_path, files)
    check_archive(path, ArchiveLimits())  # accepted first, as every stored archive is
    result = analyze_archive(path, ArchiveLimits())
    json.dumps(result, allow_nan=False)
    return result


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


# Accepting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main.tofu", "main.tofu.json", "main.tf.json", "override.tofu"])
def test_a_root_with_only_opentofu_or_json_files_is_a_module(tmp_path: Path, name: str):
    info = check_archive(make_archive(tmp_path, {name: "", "README.md": "# m\n"}), ArchiveLimits())
    assert info.root_tf_files == (name,)


@pytest.mark.parametrize(
    "files",
    [
        {"modules/a/main.tofu": ""},  # not at the root
        {".main.tofu": "", "main.tofu~": "", "#main.tofu#": ""},  # hidden and editor files
        {"main.tofu.txt": "", "main.json": "", "tofu": ""},
    ],
)
def test_a_root_without_configuration_files_is_refused(tmp_path: Path, files: dict[str, str]):
    with pytest.raises(InvalidArchive, match=r"archive has no \.tf file at its root \(nor \.tf\.json, \.tofu or \.tofu\.json\)"):
        check_archive(make_archive(tmp_path, files), ArchiveLimits())


def test_a_github_tag_tarball_of_a_tofu_module_is_accepted(tmp_path: Path):
    tag = io.BytesIO(tar_gz({"acme-tofu-abc123/main.tofu": MAIN_TOFU, "acme-tofu-abc123/variables.tofu": VARIABLES_TOFU}))
    rerooted = tmp_path / "rerooted.tar.gz"
    with rerooted.open("wb") as out:
        strip_top_level_directory(tag, out, ArchiveLimits())
    assert check_archive(rerooted, ArchiveLimits()).root_tf_files == ("main.tofu", "variables.tofu")
    assert [i["name"] for i in analyze_archive(rerooted, ArchiveLimits())["root"]["inputs"]] == ["name", "size"]


# Analysing ----------------------------------------------------------------------------------


def test_a_tofu_module_is_analysed_like_a_tf_one(tmp_path: Path):
    result = analyze(
        tmp_path,
        {
            "main.tofu": MAIN_TOFU,
            "variables.tofu": VARIABLES_TOFU,
            "modules/sub/main.tofu": 'variable "x" {}\noutput "y" { value = var.x }\n',
        },
    )
    root = result["root"]
    assert result["errors"] == [] and result["complete"] is True
    assert by_name(root["inputs"]) == {
        "name": {"name": "name", "type": "string", "description": "The name", "default": None, "required": True,
                 "sensitive": False, "nullable": True},
        "size": {"name": "size", "type": "number", "description": "", "default": 2, "required": False,
                 "sensitive": True, "nullable": False},
    }
    assert root["outputs"] == [{"name": "bucket", "description": "The bucket"}]
    assert root["dependencies"] == [{"name": "net", "source": "example/net/aws", "version": "~> 1.0"}]
    assert root["provider_dependencies"] == [
        {"name": "aws", "namespace": "hashicorp", "source": "hashicorp/aws", "version": ">= 5.0"}
    ]
    assert root["resources"] == [{"name": "this", "type": "aws_s3_bucket"}]
    (sub,) = result["submodules"]
    assert (sub["path"], [i["name"] for i in sub["inputs"]], [o["name"] for o in sub["outputs"]]) == ("modules/sub", ["x"], ["y"])


def test_a_tf_json_module_is_analysed_in_every_json_form(tmp_path: Path):
    result = analyze(
        tmp_path,
        {
            "main.tf.json": json.dumps(MAIN_TF_JSON),
            "modules/sub/main.tf.json": json.dumps({"variable": [{"x": [{"type": "bool"}]}], "output": {"y": {"value": 1}}}),
        },
    )
    root = result["root"]
    assert result["errors"] == []
    inputs = by_name(root["inputs"])
    assert inputs["name"] == {"name": "name", "type": "string", "description": "The name", "default": None,
                              "required": True, "sensitive": False, "nullable": True}
    # JSON strings are taken as written: an expression stays "${...}", "<<EOT" is no heredoc in JSON
    assert inputs["tags"] == {"name": "tags", "type": "map(string)", "description": "<<EOT\nnot a heredoc\nEOT",
                              "default": {"team": "a", "note": '${upper("x")}'}, "required": False,
                              "sensitive": True, "nullable": False}
    assert (inputs["nothing"]["default"], inputs["nothing"]["required"]) == (None, False)
    assert root["outputs"] == [{"name": "bucket", "description": "The bucket"}, {"name": "count", "description": ""}]
    assert root["dependencies"] == [{"name": "net", "source": "example/net/aws", "version": "~> 1.0"}]
    assert root["provider_dependencies"] == [
        {"name": "aws", "namespace": "hashicorp", "source": "hashicorp/aws", "version": ">= 5.0"},
        {"name": "random", "namespace": "hashicorp", "source": "hashicorp/random", "version": ">= 3.0"},
    ]
    # data sources are not resources, as in .tf files; "//" is never a name
    assert root["resources"] == [
        {"name": "a", "type": "random_id"},
        {"name": "b", "type": "random_id"},
        {"name": "this", "type": "aws_s3_bucket"},
    ]
    (sub,) = result["submodules"]
    assert [(i["name"], i["type"]) for i in sub["inputs"]] == [("x", "bool")]
    assert [o["name"] for o in sub["outputs"]] == ["y"]


def test_tf_json_and_tf_give_the_same_analysis(tmp_path: Path):
    (tmp_path / "a").mkdir()
    native = analyze(tmp_path / "a", {"main.tofu": MAIN_TOFU, "variables.tf": VARIABLES_TOFU})
    as_json = {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": ">= 5.0"}}},
        "module": {"net": {"source": "example/net/aws", "version": "~> 1.0"}},
        "resource": {"aws_s3_bucket": {"this": {"bucket": "${var.name}"}}},
        "output": {"bucket": {"description": "The bucket", "value": "${aws_s3_bucket.this.id}"}},
        "variable": {
            "name": {"type": "string", "description": "The name"},
            "size": {"type": "number", "default": 2, "sensitive": True, "nullable": False},
        },
    }
    (tmp_path / "b").mkdir()
    assert analyze(tmp_path / "b", {"main.tf.json": json.dumps(as_json)})["root"] == native["root"]


def test_a_mixed_module_counts_all_four_kinds(tmp_path: Path):
    result = analyze(
        tmp_path,
        {
            "a.tf": 'variable "from_tf" {}\n',
            "b.tofu": 'variable "from_tofu" {}\n',
            "c.tf.json": json.dumps({"variable": {"from_tf_json": {}}}),
            "d.tofu.json": json.dumps({"output": {"from_tofu_json": {"value": 1}}}),
            "notes.json": json.dumps({"variable": {"not_config": {}}}),
            ".hidden.tf": 'variable "hidden" {}\n',
        },
    )
    assert [i["name"] for i in result["root"]["inputs"]] == ["from_tf", "from_tf_json", "from_tofu"]
    assert [o["name"] for o in result["root"]["outputs"]] == ["from_tofu_json"]
    assert result["errors"] == []


# OpenTofu's rules -----------------------------------------------------------------------------


def test_a_tofu_file_wins_over_the_tf_file_of_the_same_name(tmp_path: Path):
    result = analyze(
        tmp_path,
        {
            "main.tf": 'variable "terraform_only" {}\nthis is not even HCL {{{\n',  # hidden: never parsed
            "main.tofu": 'variable "tofu" {}\n',
            "vars.tf.json": json.dumps({"variable": {"terraform_json": {}}}),
            "vars.tofu.json": json.dumps({"variable": {"tofu_json": {}}}),
            "other.tf": 'variable "other" {}\n',  # no .tofu of its name: read
            "cross.tf": 'variable "cross" {}\n',  # a .tofu.json does not hide a .tf
            "cross.tofu.json": json.dumps({"variable": {"cross_json": {}}}),
            ".hidden.tofu": "",  # an ignored file hides nothing
            "hidden.tf": 'variable "not_hidden" {}\n',
            "modules/m/main.tf": 'variable "sub_tf" {}\n',
            "modules/m/main.tofu": 'variable "sub_tofu" {}\n',
            "modules/n/main.tofu": 'variable "n" {}\n',
            "modules/n/other.tf": 'variable "n_other" {}\n',
        },
    )
    assert result["errors"] == []
    assert [i["name"] for i in result["root"]["inputs"]] == ["cross", "cross_json", "not_hidden", "other", "tofu", "tofu_json"]
    m, n = result["submodules"]
    assert [i["name"] for i in m["inputs"]] == ["sub_tofu"]
    assert [i["name"] for i in n["inputs"]] == ["n", "n_other"]  # a .tofu in one directory hides nothing in another


def test_a_hidden_tf_file_is_not_reported_even_when_it_could_not_be_read(tmp_path: Path):
    big = 'variable "big" {}\n' + "#" * (1024 * 1024)
    result = analyze(tmp_path, {"main.tf": big, "main.tofu": 'variable "small" {}\n'})
    assert (result["errors"], [i["name"] for i in result["root"]["inputs"]]) == ([], ["small"])
    result = analyze(tmp_path, {"main.tofu": big, "main.tf": 'variable "small" {}\n'})
    assert (result["errors"], result["root"]["inputs"]) == (["main.tofu: file is larger than 1 MiB; skipped"], [])


def test_override_files_merge_into_the_primary_files_as_opentofu_merges_them(tmp_path: Path):
    result = analyze(
        tmp_path,
        {
            "main.tf": '''
variable "a" {
  type        = string
  description = "primary"
}
variable "b" {
  default = 1
}
output "o" {
  description = "primary"
  value       = 1
}
output "p" {
  description = "kept"
  value       = 1
}
module "m" {
  source  = "example/m/aws"
  version = "1.0.0"
}
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 4.0" }
    acme = { source = "example/acme", version = "1.0" }
  }
}
resource "aws_s3_bucket" "b" {}
''',
            # overrides come after the primary files whatever their names, in name order
            "a_override.tf": 'variable "a" {\n  default = "x"\n  sensitive = true\n}\n',
            "b_override.tofu.json": json.dumps(
                {
                    "variable": {"a": {"description": "json override"}, "b": {"nullable": False}},
                    "output": {"o": {"description": "overridden"}, "p": {"value": 2}},
                    "module": {"m": {"version": "2.0.0"}},
                    "terraform": {"required_providers": {"aws": {"version": ">= 5.0"}}},
                    "resource": {"aws_s3_bucket": {"b": {"bucket": "x"}}},
                }
            ),
            "b_override.tf.json": json.dumps({"variable": {"a": {"description": "hidden by the .tofu.json"}}}),
            "override.tofu": 'variable "ghost" {}\nresource "x" "y" {}\noutput "q" { value = 1 }\nmodule "z" { source = "./z" }\n',
        },
    )
    root = result["root"]
    inputs = by_name(root["inputs"])
    assert inputs["a"] == {"name": "a", "type": "string", "description": "json override", "default": "x",
                           "required": False, "sensitive": True, "nullable": True}
    assert (inputs["b"]["default"], inputs["b"]["nullable"]) == (1, False)
    assert root["outputs"] == [{"name": "o", "description": "overridden"}, {"name": "p", "description": "kept"}]
    assert root["dependencies"] == [{"name": "m", "source": "example/m/aws", "version": "2.0.0"}]
    # a requirement in an override file replaces the primary one whole: its source is the implied one
    assert by_name(root["provider_dependencies"]) == {
        "acme": {"name": "acme", "namespace": "example", "source": "example/acme", "version": "1.0"},
        "aws": {"name": "aws", "namespace": "hashicorp", "source": "hashicorp/aws", "version": ">= 5.0"},
    }
    assert root["resources"] == [{"name": "b", "type": "aws_s3_bucket"}]
    # an override file cannot declare what no primary file did: OpenTofu refuses it, the analysis says so
    assert result["errors"] == [
        'override.tofu: there is no module call "z" to override',
        'override.tofu: there is no output "q" to override',
        'override.tofu: there is no variable "ghost" to override',
        'override.tofu: there is no x resource "y" to override',
    ]
    assert [i["name"] for i in root["inputs"]] == ["a", "b"]


# Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"variable": {"a": {}', "invalid JSON: Expecting ',' delimiter: line 1 column 22 (char 21)"),
        ("", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('["variable"]', "the root of a JSON configuration must be an object"),
        ('{"variable": {"a": {"default": NaN}}}', "invalid JSON: NaN is not a JSON number"),
        ('{"variable": {"a": {"default": -Infinity}}}', "invalid JSON: -Infinity is not a JSON number"),
        ('{"variable": {"a": {"default": 1' + "0" * 5000 + "}}}", "invalid JSON: Exceeds the limit (4300 digits)"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"JSON nested more than {MAX_DEPTH} levels deep"),
        ("\udcff", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_a_malformed_json_file_is_reported_and_the_rest_still_counts(tmp_path: Path, text: str, error: str):
    files = {"main.tofu": 'variable "ok" {}\n', "bad.tofu.json": text, "modules/s/bad.tf.json": text}
    path = tmp_path / "module.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode("utf-8", "surrogateescape")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = analyze_archive(path, ArchiveLimits())
    assert [e.partition(": ")[0] for e in result["errors"]] == ["bad.tofu.json", "modules/s/bad.tf.json"]
    assert all(e.partition(": ")[2].startswith(error) for e in result["errors"]), result["errors"]
    assert [i["name"] for i in result["root"]["inputs"]] == ["ok"]
    assert result["complete"] is True


def test_odd_but_valid_json_shapes_declare_nothing_and_never_fail(tmp_path: Path):
    odd = {
        "variable": ["x", 1, None, {"a": "not a body"}, {"b": [1, {"type": ["not", "text"]}]}],
        "output": {"o": 5},
        "module": [[{"m": {}}]],
        "resource": {"t": "x", "u": {"n": 7}},
        "terraform": {"required_providers": [1, {"aws": {"source": 5}}, {"x": None}]},
        "//": {"variable": {"hidden": {}}},
    }
    result = analyze(tmp_path, {"main.tf.json": json.dumps(odd)})
    root = result["root"]
    assert result["errors"] == []
    # a label whose body is not an object declares nothing (OpenTofu refuses it)
    assert [(i["name"], i["type"]) for i in root["inputs"]] == [("b", "['not', 'text']")]
    assert (root["outputs"], root["dependencies"], root["resources"]) == ([], [], [])
    assert [p["source"] for p in root["provider_dependencies"]] == ["5", "hashicorp/x"]


async def test_deep_json_nesting_is_refused_quickly_in_the_sandbox(tmp_path: Path):
    """Nearly 1 MiB (the file limit) of opening brackets, a few KiB gzipped: refused before the
    json module recurses into it, in the real child process."""
    deep = '{"variable": ' + "[" * (1024 * 1024 - 20)
    path = make_archive(tmp_path, {"main.tofu": 'variable "ok" {}\n', "deep.tf.json": deep})
    assert path.stat().st_size < 64 * 1024
    analyzer = Analyzer(cache_dir=tmp_path / "cache")
    started = time.perf_counter()
    try:
        result = await analyzer.analyze(path, ArchiveLimits())
    finally:
        await analyzer.close()
    assert time.perf_counter() - started < 10
    assert result["errors"] == [f"deep.tf.json: JSON nested more than {MAX_DEPTH} levels deep"]
    assert [i["name"] for i in result["root"]["inputs"]] == ["ok"]


async def test_the_same_bytes_as_json_and_as_native_syntax_are_cached_apart(tmp_path: Path):
    text = json.dumps({"variable": {"v": {}}})
    analyzer = Analyzer(cache_dir=tmp_path / "cache")
    try:
        as_json = await analyzer.analyze(make_archive(tmp_path, {"main.tf.json": text}, "a.tar.gz"), ArchiveLimits())
        as_native = await analyzer.analyze(make_archive(tmp_path, {"main.tf": text}, "b.tar.gz"), ArchiveLimits())
        again = await analyzer.analyze(make_archive(tmp_path, {"x.tofu.json": text}, "c.tar.gz"), ArchiveLimits())
    finally:
        await analyzer.close()
    assert [i["name"] for i in as_json["root"]["inputs"]] == ["v"]
    assert as_native["root"]["inputs"] == [] and as_native["errors"][0].startswith("main.tf: ")
    assert [i["name"] for i in again["root"]["inputs"]] == ["v"]
    assert (analyzer.counters.parsed, analyzer.counters.cache_hits) == (2, 1)


# Through the API --------------------------------------------------------------------------------


async def test_a_tofu_only_module_is_published_and_analysed(registry):
    admin = await registry.auth()
    body = tar_gz(
        {
            "main.tofu": MAIN_TOFU,
            "variables.tofu": VARIABLES_TOFU,
            "main.tf": 'variable "terraform_only" {}\n',  # hidden by main.tofu
            "README.md": "# tofu\n",
            "modules/sub/main.tofu": 'variable "x" {}\noutput "y" { value = var.x }\n',
        }
    )
    response = await registry.publish(ADDR, "1.0.0", body, admin)
    assert response.status == 201, await response.text()

    detail = await registry.client.get(f"/v1/modules/{ADDR}/1.0.0", headers=admin)
    assert detail.status == 200
    shown = await detail.json()
    assert shown["analysis_errors"] == []
    assert [(i["name"], i["required"], i["sensitive"]) for i in shown["root"]["inputs"]] == [
        ("name", True, False),
        ("size", False, True),
    ]
    assert shown["root"]["outputs"] == [{"name": "bucket", "description": "The bucket"}]
    assert [p["source"] for p in shown["root"]["provider_dependencies"]] == ["hashicorp/aws"]
    assert [(s["path"], [i["name"] for i in s["inputs"]]) for s in shown["submodules"]] == [("modules/sub", ["x"])]


async def test_json_modules_are_published_and_bad_files_reported_not_refused(registry):
    admin = await registry.auth()
    body = tar_gz(
        {
            "main.tf.json": json.dumps(MAIN_TF_JSON),
            "broken.tofu.json": '{"variable": ',
            "broken.tofu": 'variable "x" {\n',
            "deep.tf.json": "[" * 100_000,
        }
    )
    response = await registry.publish(ADDR, "1.0.0", body, admin)
    assert response.status == 201, await response.text()
    shown = await (await registry.client.get(f"/v1/modules/{ADDR}/1.0.0", headers=admin)).json()
    assert [e.partition(":")[0] for e in shown["analysis_errors"]] == ["broken.tofu.json", "broken.tofu", "deep.tf.json"]
    assert [i["name"] for i in shown["root"]["inputs"]] == ["name", "nothing", "tags"]
    assert [o["name"] for o in shown["root"]["outputs"]] == ["bucket", "count"]

    # a root without any configuration file is still refused, with the reason
    refused = await registry.publish(ADDR, "2.0.0", tar_gz({"main.json": "{}", "README.md": "x"}), admin)
    assert refused.status == 422
    (error,) = (await refused.json())["errors"]
    assert "no .tf file at its root (nor .tf.json, .tofu or .tofu.json)" in error
