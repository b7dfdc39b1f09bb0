"""Render the deployment manifest and cloud config for one IaaS from one set of variables.

The templates live in the repository's ``manifests/`` folder: ``deployment.yml.j2`` (the
same for every cloud), ``cloud-config.yml.j2`` and one overlay per IaaS in
``manifests/iaas/<iaas>.j2``. Rendering uses a Jinja2 sandbox with StrictUndefined, so a
missing variable is an error that names the template file and line, and the result is
parsed back as YAML so a template that emits broken YAML fails here, not at the director.

Jinja2 and PyYAML are core dependencies but are imported inside the functions so that
loading the step module (``runbook validate``) stays cheap.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook.api import StepFailed

IAAS = ("vcloud", "openstack", "aws", "cloudstack")
MANIFEST_TEMPLATE = "deployment.yml.j2"
CLOUD_CONFIG_TEMPLATE = "cloud-config.yml.j2"


class ManifestError(StepFailed):
    """Variables or templates do not produce a manifest; the message says where."""


@dataclass(frozen=True)
class Rendered:
    iaas: str
    manifest: str
    cloud_config: str
    placement: dict[str, list[str]]
    manifest_path: Path | None = None
    cloud_config_path: Path | None = None


def default_templates() -> Path:
    """``manifests/`` at the root of the source tree this package runs from."""
    return Path(__file__).resolve().parents[2] / "manifests"


def load_variables(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        return dict(source)
    import yaml

    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ManifestError(f"cannot read manifest variables {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: manifest variables must be a mapping")
    return data


def spread(groups: list[dict[str, Any]], azs: list[str]) -> dict[str, list[str]]:
    """The availability-zone spread of seeds/001, as each group's ``azs:`` list.

    A group of N instances is spread over min(N, zones) zones, so losing one zone never
    takes a whole redundant group. Groups that cover every zone (and groups pinned with
    their own ``azs:``) are placed first; smaller groups - typically the singletons with
    persistent disks (cc_db, uaa_db, nfs_server) - then go to the least loaded zones, so
    they do not all land in the first zone and the instances per zone stay balanced.
    Instance counts per zone are modelled by :func:`zone_counts`.
    """
    if not azs:
        raise ManifestError("manifest variables: 'azs' must list at least one zone")
    placement: dict[str, list[str]] = {}
    load = {z: 0 for z in azs}
    small = []
    for group in groups:
        name = str(group.get("name", "?"))
        count = max(1, int(group.get("instances", 1)))
        if group.get("azs"):
            unknown = [z for z in group["azs"] if z not in azs]
            if unknown:
                raise ManifestError(f"instance group '{name}' names unknown zone(s) "
                                    f"{', '.join(unknown)}; known: {', '.join(azs)}")
            placement[name] = list(group["azs"])
        elif count >= len(azs):
            placement[name] = list(azs)
        else:
            small.append((name, count))
            continue
        _add(load, placement[name], count)
    for name, count in small:
        ranked = sorted(azs, key=lambda z: (load[z], azs.index(z)))[:count]
        placement[name] = [z for z in azs if z in ranked]  # keep declared zone order
        _add(load, placement[name], count)
    return {str(g.get("name", "?")): placement[str(g.get("name", "?"))] for g in groups}


def _add(load: dict[str, int], zones: list[str], count: int) -> None:
    for i in range(count):
        load[zones[i % len(zones)]] += 1


def zone_counts(groups: list[dict[str, Any]], placement: dict[str, list[str]],
                azs: list[str]) -> dict[str, int]:
    """Instances per zone, assuming BOSH splits a group evenly over its zones and gives
    any remainder to the zones listed first (an assumption, not read from the director)."""
    counts = {z: 0 for z in azs}
    for group in groups:
        _add(counts, placement[str(group["name"])], max(1, int(group.get("instances", 1))))
    return counts


def render_texts(iaas: str, variables: str | Path | dict[str, Any],
                 templates: str | Path | None = None) -> Rendered:
    """Render both documents in memory (no files written)."""
    if iaas not in IAAS:
        raise ManifestError(f"unknown IaaS '{iaas}'; choose one of {', '.join(IAAS)}")
    data = load_variables(variables)
    root = Path(templates) if templates else default_templates()
    if not (root / MANIFEST_TEMPLATE).is_file():
        raise ManifestError(f"no {MANIFEST_TEMPLATE} in {root}; point 'templates' at the "
                            "manifests folder")
    groups = data.get("instance_groups")
    if not isinstance(groups, list):
        raise ManifestError("manifest variables: 'instance_groups' must be a list")
    placement = spread(groups, list(data.get("azs") or []))
    context = {**data, "iaas": iaas, "iaas_vars": (data.get("iaas") or {}).get(iaas, {}),
               "placement": placement}
    manifest = _render(root, MANIFEST_TEMPLATE, context)
    cloud = _render(root, CLOUD_CONFIG_TEMPLATE, context)
    return Rendered(iaas, manifest, cloud, placement)


def render_manifest(iaas: str, variables: str | Path | dict[str, Any], out_path: str | Path,
                    templates: str | Path | None = None) -> Rendered:
    """Render for ``iaas`` and write the manifest to ``out_path`` and the cloud config
    beside it as ``<stem>.cloud-config<suffix>``. Returns both texts and paths."""
    rendered = render_texts(iaas, variables, templates)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cloud_path = out.with_name(f"{out.stem}.cloud-config{out.suffix or '.yml'}")
    out.write_text(rendered.manifest)
    cloud_path.write_text(rendered.cloud_config)
    return Rendered(iaas, rendered.manifest, rendered.cloud_config, rendered.placement,
                    out, cloud_path)


def _render(root: Path, name: str, context: dict[str, Any]) -> str:
    import jinja2
    import yaml
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(root)),
                               undefined=jinja2.StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        where = _relative(root, exc.filename or name)
        raise ManifestError(f"{where}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise ManifestError(f"{name}: template {exc.name} not found under {root} "
                            "(is the IaaS overlay missing?)") from None
    except Exception as exc:  # undefined variables, bad filters, sandbox violations
        raise ManifestError(f"{_template_frame(root, exc, name)}: {exc}") from None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{name}: the rendered text is not valid YAML: {exc}") from None
    # Re-dump so output is canonical: golden files and diffs do not depend on whitespace.
    return str(yaml.safe_dump(parsed, sort_keys=False, default_flow_style=False, width=100))


def _template_frame(root: Path, exc: BaseException, fallback: str) -> str:
    """Jinja2 rewrites tracebacks so template frames carry the template file and line."""
    where = fallback
    base = str(root.resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and str(Path(frame.filename).resolve()).startswith(base):
            where = f"{_relative(root, frame.filename)}:{frame.lineno}"
    return where


def _relative(root: Path, filename: str) -> str:
    path = Path(filename)
    try:
        return f"{root.name}/{path.resolve().relative_to(root.resolve())}"
    except ValueError:
        return filename


def structural_diff(old_text: str | None, new_text: str, limit: int = 60) -> list[str]:
    """One line per changed leaf, lists of named items matched by ``name``:
    ``~ instance_groups[api].vm_type: small -> medium``, ``+ path: value``, ``- path: value``."""
    import yaml

    old = yaml.safe_load(old_text) if old_text else None
    new = yaml.safe_load(new_text)
    lines: list[str] = []
    _walk("", old, new, lines, limit)
    return lines


def _walk(path: str, old: Any, new: Any, out: list[str], limit: int) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(f"- {sub}: {_short(old[key], limit)}")
            elif key not in old:
                out.append(f"+ {sub}: {_short(new[key], limit)}")
            else:
                _walk(sub, old[key], new[key], out, limit)
        return
    if _named_list(old) and _named_list(new):
        olds = {i["name"]: i for i in old}
        news = {i["name"]: i for i in new}
        for name in list(olds) + [n for n in news if n not in olds]:
            sub = f"{path}[{name}]"
            if name not in news:
                out.append(f"- {sub}")
            elif name not in olds:
                out.append(f"+ {sub}")
            else:
                _walk(sub, olds[name], news[name], out, limit)
        return
    if old != new:
        if old is None:
            out.append(f"+ {path}: {_short(new, limit)}")
        else:
            out.append(f"~ {path}: {_short(old, limit)} -> {_short(new, limit)}")


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(i, dict) and "name" in i for i in value)


def _short(value: Any, limit: int) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."
