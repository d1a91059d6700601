"""Security checks: no code runs from a file, the report escapes what it shows, no config value reaches a
shell unquoted, and downloads use HTTPS with the published checksum."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from febm.cli import main
from febm.config import ConfigError, load_schema, validate

REPO = Path(__file__).resolve().parents[1]
PYTHON_SOURCES = sorted([*(REPO / "febm").rglob("*.py"), *(REPO / "workflow" / "scripts").rglob("*.py")])
SHELL_PAYLOADS = ["kl; touch PWNED", "kl && touch PWNED", "$(touch PWNED)", "`touch PWNED`", "kl | sh",
                  "kl > x", "kl'\"", "k l", "kl\ntouch PWNED", "kl/../../etc"]  # fmt: skip


def _calls(name: str):
    """(file, line, call) for every call of ``name`` (dotted, e.g. torch.load) in febm/ and workflow/scripts/."""
    for path in PYTHON_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                yield path.relative_to(REPO), node.lineno, node


# --- no arbitrary code from a file -----------------------------------------------------------------


def test_every_torch_load_uses_weights_only():
    calls = list(_calls("torch.load"))
    assert calls, "the scan found no torch.load at all"
    unsafe = [
        f"{path}:{line}"
        for path, line, call in calls
        if not any(
            kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in call.keywords
        )
    ]
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"
    # Nothing else that executes code from a file: pickle only through the CIFAR-10 reader's allow-list.
    for loader in ("pickle.load", "pickle.loads", "pickle.Unpickler", "torch.jit.load", "numpy.load", "np.load",
                   "yaml.load", "yaml.unsafe_load"):  # fmt: skip
        for path, line, call in _calls(loader):
            if loader in ("numpy.load", "np.load"):
                assert any(
                    kw.arg == "allow_pickle" and getattr(kw.value, "value", None) is False
                    for kw in call.keywords
                ), f"{path}:{line} np.load without allow_pickle=False"
            else:
                pytest.fail(f"{path}:{line} uses {loader}")


def test_a_tampered_cifar10_pickle_cannot_run_code(cifar10_standin_root, tmp_path, monkeypatch, capsys):
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    root = tmp_path / "raw"
    shutil.copytree(cifar10_standin_root, root)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"preset": "smoke", "images": {"standin_data": True}})
    )  # md5 not checked
    argv = ["prepare-data", "--config", str(config), "--dataset", "cifar10", "--root", str(root)]
    assert main([*argv, "--out", str(tmp_path / "cifar10.npz")]) == 2
    assert "cannot be unpickled (UnpicklingError)" in capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "cifar10.npz").exists()


# --- the report escapes every string from configs and files ------------------------------------------


def test_report_escapes_strings_from_the_config_and_from_files(tmp_path, capsys):
    from tests.test_report_render import TEMPLATES, write_inputs

    files = write_inputs(tmp_path)
    payload = '<script>alert("febm")</script>'
    table = files["tables"][0]
    table.write_text(table.read_text().replace("kl", f"kl{payload}", 1))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"preset": "smoke", "images": {"standin_data": True}, "report": {"title": f"T {payload}"}}
        )
    )
    out = tmp_path / "index.html"
    arguments = ["report", "--config", str(config), "--templates", str(TEMPLATES), "--out", str(out)]
    for name, paths in files.items():
        arguments += [f"--{name.replace('_', '-')}", *map(str, paths)]
    assert main(arguments) == 0, capsys.readouterr().err
    html = out.read_text()
    assert payload not in html and "<script" not in html.lower()
    escaped = re.findall(r"&lt;script&gt;alert\((?:&#34;|&quot;)febm(?:&#34;|&quot;)\)&lt;/script&gt;", html)
    assert len(escaped) >= 3, "title, config listing and table cell should each show the escaped text"


# --- no config value reaches a shell unquoted ---------------------------------------------------------


def _free_text_keys(schema: dict, root: dict, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """Config keys whose schema allows arbitrary text (a string without enum or pattern)."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    found = []
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "string" in types and "enum" not in schema and "pattern" not in schema:
        found.append(prefix)
    for name, sub in schema.get("properties", {}).items():
        found += _free_text_keys(sub, root, (*prefix, name))
    if isinstance(schema.get("items"), dict):
        found += _free_text_keys(schema["items"], root, (*prefix, 0))
    return found


def test_names_that_become_wildcards_reject_shell_metacharacters():
    payload = "kl; touch PWNED $(touch PWNED) `touch PWNED` | > ' \" k l\n../"
    for overlay in (
        {"toy": {"divergences": [payload]}},
        {"images": {"divergences": [payload]}},
        {"images": {"datasets": [payload]}},
        {"images": {"methods": [payload]}},
    ):
        with pytest.raises(ConfigError, match="config key"):
            validate(overlay)


@pytest.fixture(scope="module")
def loaded_workflow(tmp_path_factory):
    """The workflow as Snakemake loads it (smoke preset), for its rules' shell commands and wildcards."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    workdir = tmp_path_factory.mktemp("loaded")
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.chdir(REPO),
        SnakemakeApi(OutputSettings()) as api,
    ):
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[REPO / "config" / "smoke.yaml"]),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )
        workflow_api.list_rules()
        return workflow_api._workflow


def test_every_wildcard_in_a_shell_command_is_constrained_to_safe_names(loaded_workflow):
    checked = 0
    for rule in loaded_workflow.rules:
        command = rule.shellcmd or ""
        for name in set(re.findall(r"\{wildcards\.(\w+)", command)):
            for output in rule.output:
                if name not in output.get_wildcard_names():
                    continue
                constraint = output.wildcard_constraints().get(name)
                assert constraint, f"rule {rule.name}: wildcard {name} has no constraint"
                for payload in SHELL_PAYLOADS:
                    assert not re.fullmatch(f"(?:{constraint})", payload), (
                        rule.name,
                        name,
                        constraint,
                        payload,
                    )
                checked += 1
    assert checked >= 10


def test_every_shell_field_is_a_path_a_wildcard_or_a_checked_param(loaded_workflow):
    """Shell fields are inputs, outputs, logs, wildcards (constrained above), fixed paths, or params whose
    plain values are safe words; params computed per job are checked by the dry run below."""
    safe = re.compile(r"[\w./=, {}-]*")  # {name}: a wildcard, constrained above
    params = 0
    for rule in loaded_workflow.rules:
        for field_ in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", rule.shellcmd or ""):
            head, _, rest = field_.partition(".")
            if head in {"input", "output", "log", "threads", "wildcards"}:
                continue
            if head == "params":
                value = rule.params.get(rest.split(":")[0])
                values = value if isinstance(value, list) else [value]
                assert callable(value) or all(safe.fullmatch(str(v)) for v in values), (
                    rule.name,
                    field_,
                    value,
                )
                params += 1
                continue
            value = loaded_workflow.globals.get(head)  # a module-level constant such as RAW_DATA_ROOT
            assert isinstance(value, str) and safe.fullmatch(value), (rule.name, field_, value)
    assert params >= 5


def test_free_text_config_values_never_reach_a_shell_command(tmp_path, capfd):
    """Put shell payloads into every free-text key of the schema and print every command of the plan."""
    import snakemake.cli

    keys = _free_text_keys(load_schema(), load_schema())
    assert ("report", "title") in keys
    overlay: dict = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for key in keys:
        node = overlay
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = "x'; touch PWNED; echo $(touch PWNED) `touch PWNED`"
    validate(yaml.safe_load(yaml.safe_dump(overlay)))  # the payload is a valid config
    config = tmp_path / "payload.yaml"
    config.write_text(yaml.safe_dump(overlay))
    capfd.readouterr()
    with contextlib.chdir(REPO), contextlib.suppress(SystemExit):
        snakemake.cli.main(["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                            str(config), "--dry-run", "--printshellcmds", "--cores", "1", "--forceall"])  # fmt: skip
    output = "".join(capfd.readouterr())
    assert "febm train-images" in output and "febm report" in output, output[-3000:]
    assert "PWNED" not in output
    assert not (tmp_path / "PWNED").exists()


# --- downloads: HTTPS, with the published checksum --------------------------------------------------


def test_no_plain_http_anywhere_in_the_code():
    sources = [*PYTHON_SOURCES, REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]
    offenders = [str(path.relative_to(REPO)) for path in sources if re.search(r"\bhttp://", path.read_text())]
    assert offenders == []


def test_cifar10_download_is_https_and_md5_checked(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    from febm.images import data

    calls = []
    monkeypatch.setattr(
        torchvision.datasets.utils, "download_and_extract_archive", lambda *a, **k: calls.append((a, k))
    )
    data.download_cifar10(tmp_path)
    ((args, kwargs),) = calls
    assert args[0].startswith("https://") and kwargs["md5"] == "c58f30108f718f92721af3b95e74349a"
    # After extraction every batch is checked against torchvision's published sums (unless stand-ins).
    assert len(data.CIFAR10_TRAIN_FILES) == 5 and all(len(v) == 32 for v in data.CIFAR10_TRAIN_FILES.values())


def test_inception_download_is_https_and_layout_checked_before_install(tmp_path, monkeypatch):
    from febm.evaluation import weights

    assert weights.FID_WEIGHTS_URL.startswith("https://")
    opened = []

    class Response(io.BytesIO):
        headers: ClassVar[dict] = {}

    def urlopen(url, timeout):
        opened.append(url)
        return Response(b"not a state dict")

    monkeypatch.setattr(weights.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(weights, "hub_cache_path", lambda: tmp_path / "no-cache" / weights.WEIGHTS_FILENAME)
    target = tmp_path / "inception" / weights.WEIGHTS_FILENAME
    with pytest.raises(weights.InceptionWeightsError, match="truncated or not a state dict"):
        weights.download_weights(target)
    assert opened == [weights.FID_WEIGHTS_URL] and not target.exists()
    assert not list(target.parent.glob("*.tmp"))
