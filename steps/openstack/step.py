"""``openstack.export``, ``openstack.import`` and ``openstack.import_volume``.

Network resources move through a YAML file an operator can read and edit (see
:mod:`steps.openstack.resources`); disks move as Glance images turned into Cinder volumes.
openstacksdk and PyYAML are imported only when a step runs, so ``runbook validate`` stays
fast.

Every step reads the target key ``openstack``: ``{cloud: NAME, clouds_yaml: PATH,
region_name: REGION}`` or ``{auth: {auth_url, username, password: ${env:..}, ...}}``.
The step parameters ``cloud`` and ``clouds_yaml`` override the profile.

::

    - id: export-network
      uses: openstack.export
      with: {target: source, path: state/network.yml, exclude: ["default"]}
    # (an operator may edit state/network.yml here, e.g. the external network's name)
    - id: import-network
      uses: openstack.import
      with: {target: destination, path: state/network.yml}
    - id: blobstore-volume
      uses: openstack.import_volume
      with: {target: destination, file: "{{ steps.dump.outputs.path }}",
             volume_name: blobstore, timeout: 45m}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runbook.api import (
    Action,
    Duration,
    Plan,
    Result,
    Step,
    StepContext,
    StepFailed,
    TargetRef,
    param,
)

if TYPE_CHECKING:
    from steps.openstack.client import Cloud

Kind = Literal["networks", "subnets", "routers", "security_groups"]
ALL_KINDS: list[Kind] = ["networks", "subnets", "routers", "security_groups"]


@dataclass(frozen=True, kw_only=True)
class CloudParams:
    target: TargetRef = param(doc="target whose 'openstack' key says how to reach the cloud")
    cloud: str | None = param(None, doc="clouds.yaml entry (overrides the target's)")
    clouds_yaml: str | None = param(None, doc="path of clouds.yaml (overrides the target's)")


def open_cloud(ctx: StepContext, params: Any) -> Cloud:
    """Connect to the cloud a step's ``target`` (and overrides) describe."""
    from steps.openstack.client import connect  # openstacksdk is slow to import

    settings = dict(ctx.target(params.target).get("openstack") or {})
    if params.cloud:
        settings["cloud"] = params.cloud
    if params.clouds_yaml:
        settings["clouds_yaml"] = params.clouds_yaml
    if not settings.get("cloud") and not settings.get("auth"):
        raise StepFailed(f"target '{params.target}' has no 'openstack' settings; give it "
                         "openstack: {cloud: NAME} or set the step's 'cloud' parameter")
    return connect(settings, str(params.target))


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a core dependency
        from runbook.api import MissingDependency
        raise MissingDependency("yaml", "openstack") from exc
    return yaml


@dataclass(frozen=True, kw_only=True)
class ExportParams(CloudParams):
    path: str = param("openstack-resources.yml", doc="resource file to write")
    kinds: list[Kind] = param(factory=lambda: list(ALL_KINDS), doc="kinds to export")
    include: list[str] = param(factory=lambda: ["*"], doc="name globs to export")
    exclude: list[str] = param(factory=list, doc="name globs to leave out")
    own_only: bool = param(True, doc="only the project's own resources (not shared or "
                                     "provider networks)")


class ExportResources(Step[ExportParams]):
    """Write a cloud's networks, subnets, routers and security groups to a YAML file.

    The file is meant to be read and edited before ``openstack.import``. Reads target key
    ``openstack``. Outputs: ``path`` and a count per kind. Revert puts back the file that
    was there before (or removes the new one)."""

    Params = ExportParams
    idempotent = True
    outputs = ("path", "networks", "subnets", "routers", "security_groups")

    def observe(self, ctx: StepContext, params: ExportParams) -> dict[str, Any]:
        from steps.openstack.resources import export_document, filtered

        cloud = open_cloud(ctx, params)
        have = cloud.network_state()
        mine = {k: [r for r in v if not params.own_only or r.get("project_id") in
                    (None, cloud.project_id)] for k, v in have.items()}
        chosen = filtered(mine, list(params.kinds), params.include, params.exclude)
        doc = export_document(chosen, have, cloud.name)
        path = Path(params.path)
        current = path.read_text() if path.exists() else None
        return {"document": doc, "current": current}

    def plan(self, params: ExportParams, facts: dict[str, Any] | None) -> Plan:
        if facts is None:
            return Plan.of(Action.unknown(f"export {', '.join(params.kinds)} from target "
                                          f"'{params.target}' to {params.path}"))
        text = render(facts["document"])
        if facts["current"] == text:
            return Plan.unchanged(f"{params.path} already holds these resources")
        counts = ", ".join(f"{len(facts['document'][k])} {k}" for k in params.kinds)
        verb = "overwrite" if facts["current"] is not None else "write"
        return Plan.of(Action.change(f"{verb} {params.path} with {counts}"))

    def apply(self, ctx: StepContext, params: ExportParams, plan: Plan) -> Result:
        facts = self.observe(ctx, params)  # fresh: the file is written from what is there now
        doc = facts["document"]
        outputs: dict[str, Any] = {"path": params.path}
        outputs.update({k: len(doc.get(k, [])) for k in ALL_KINDS})
        text = render(doc)
        if facts["current"] == text:
            return Result(outputs=outputs, changed=False)
        record: dict[str, Any] = {"path": params.path, "backup": None}
        if facts["current"] is not None:
            backup = ctx.artifact_dir / f"{ctx.safe_step_id}.previous.yml"
            backup.write_text(facts["current"])
            record["backup"] = str(backup)
        ctx.checkpoint(record)
        _write_atomically(Path(params.path), text)
        return Result(outputs=outputs, record=record)

    def verify(self, ctx: StepContext, params: ExportParams, result: Result | None) -> bool:
        path = Path(params.path)
        return path.exists() and _yaml().safe_load(path.read_text()) is not None

    def revert(self, ctx: StepContext, params: ExportParams, record: dict[str, Any]) -> None:
        path = Path(record.get("path", params.path))
        if record.get("backup"):
            _write_atomically(path, Path(record["backup"]).read_text())
        elif path.exists():
            path.unlink()

    def revert_plan(self, params: ExportParams, record: dict[str, Any]) -> Plan:
        if record.get("backup"):
            return Plan.of(Action.change(f"restore the previous {record['path']}"))
        return Plan.of(Action.change(f"remove {record.get('path', params.path)}"))


def render(doc: dict[str, Any]) -> str:
    header = "# OpenStack resources: edit, then import with openstack.import\n"
    return header + str(_yaml().safe_dump(doc, sort_keys=False, default_flow_style=False))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True, kw_only=True)
class ImportParams(CloudParams):
    path: str = param("openstack-resources.yml", doc="resource file to read")
    kinds: list[Kind] = param(factory=lambda: list(ALL_KINDS), doc="kinds to import")
    include: list[str] = param(factory=lambda: ["*"], doc="name globs to import")
    exclude: list[str] = param(factory=list, doc="name globs to leave out")


class ImportResources(Step[ImportParams]):
    """Create the resources of a resource file on a cloud, matching existing ones by name.

    A resource that exists and equals the file is left alone; a differing one is
    updated (its old values recorded); rules and router interfaces are only ever added.
    Reads target key ``openstack``. Outputs: ``created``, ``updated``, ``unchanged``
    (counts of networks, subnets, routers and groups), ``rules_added``,
    ``interfaces_added`` and ``resources`` (kind, name, id, result). Revert deletes only
    what this import created and restores what it updated."""

    Params = ImportParams
    idempotent = True
    outputs = ("created", "updated", "unchanged", "rules_added", "interfaces_added",
               "resources")

    def observe(self, ctx: StepContext, params: ImportParams) -> dict[str, Any]:
        return self._facts(open_cloud(ctx, params), params, required=False)

    def _facts(self, cloud: Cloud, params: ImportParams, *, required: bool) -> dict[str, Any]:
        """The resource file and the destination. A file that an earlier step of the run
        has not written yet is no error while planning, only when applying."""
        from steps.openstack.resources import check_document

        path = Path(params.path)
        doc = None
        if path.exists():
            doc = check_document(_yaml().safe_load(path.read_text()), params.path)
        elif required:
            raise StepFailed(f"resource file {params.path} does not exist; write it with "
                             "openstack.export first")
        return {"document": doc, "destination": cloud.network_state()}

    def _ops(self, params: ImportParams, facts: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        from steps.openstack.resources import diff, filtered

        doc = facts["document"]
        wanted = filtered(doc, list(params.kinds), params.include, params.exclude)
        everything = filtered(doc, list(ALL_KINDS), ["*"], [])
        return diff(wanted, facts["destination"], everything)

    def plan(self, params: ImportParams, facts: dict[str, Any] | None) -> Plan:
        from steps.openstack.resources import describe

        line = (f"import {', '.join(params.kinds)} from {params.path} into target "
                f"'{params.target}'")
        if facts is None:
            return Plan.of(Action.unknown(line))
        if facts["document"] is None:
            return Plan.of(Action.unknown(f"{line} ({params.path} does not exist yet)"))
        ops, same = self._ops(params, facts)
        note = f"{len(same)} already match" if same else ""
        if not ops:
            return Plan.unchanged(f"all {len(same)} selected resources already match "
                                  f"{params.path}" if same else
                                  f"no resources in {params.path} match the filters")
        return Plan.of(*(Action.change(describe(op)) for op in ops), reason=note)

    def apply(self, ctx: StepContext, params: ImportParams, plan: Plan) -> Result:
        from steps.openstack.importer import run_import

        cloud = open_cloud(ctx, params)
        # Fresh facts: the plan may be old (dry-run, approval) and the cloud may have moved.
        facts = self._facts(cloud, params, required=True)
        ops, same = self._ops(params, facts)
        return run_import(ctx, cloud, ops, same, facts["destination"])

    def verify(self, ctx: StepContext, params: ImportParams, result: Result | None) -> bool:
        facts = self._facts(open_cloud(ctx, params), params, required=False)
        return facts["document"] is not None and not self._ops(params, facts)[0]

    def revert(self, ctx: StepContext, params: ImportParams, record: dict[str, Any]) -> None:
        from steps.openstack.importer import undo_import

        if record.get("done"):
            undo_import(open_cloud(ctx, params), record)

    def revert_plan(self, params: ImportParams, record: dict[str, Any]) -> Plan:
        from steps.openstack.importer import undo_lines

        lines = undo_lines(record)
        if not lines:
            return Plan.unchanged("this import changed nothing")
        return Plan.of(*(Action.change(line) for line in lines))


@dataclass(frozen=True, kw_only=True)
class ImportVolumeParams(CloudParams):
    file: str = param(doc="image file to upload (qcow2, raw or vmdk)")
    volume_name: str = param(doc="name of the Cinder volume to create")
    image_name: str | None = param(None, doc="name of the Glance image (default: volume_name)")
    disk_format: Literal["qcow2", "raw", "vmdk"] | None = param(
        None, doc="format of the file (default: read from its header)")
    container_format: str = param("bare", doc="Glance container format")
    size_gb: int | None = param(None, doc="volume size (default: the image's virtual size)")
    volume_type: str | None = param(None, doc="Cinder volume type")
    availability_zone: str | None = param(None, doc="Cinder availability zone")
    description: str = param("", doc="volume description")
    keep_image: bool = param(True, doc="keep the Glance image once the volume exists")
    timeout: Duration = param(Duration(1800), doc="how long the volume may take to build")
    interval: Duration = param(Duration(5), doc="pause between status checks")
    properties: dict[str, str] = param(factory=dict, doc="extra Glance image properties")


class ImportVolume(Step[ImportVolumeParams]):
    """Upload an image file to Glance and turn it into an available Cinder volume.

    The image's format and virtual size are read from the file's header first, so a
    wrong ``disk_format`` or a too small ``size_gb`` fails before anything is uploaded.
    Reads target key ``openstack``. Outputs: ``volume_id``, ``image_id``, ``size_gb``,
    ``disk_format``, ``uploaded_bytes``. Revert deletes the volume, and the image if this
    step created it."""

    Params = ImportVolumeParams
    outputs = ("volume_id", "image_id", "size_gb", "disk_format", "uploaded_bytes")

    def estimate(self, params: ImportVolumeParams) -> float | None:
        # A rough guess for window maths when the runbook gives none: upload at about
        # 50 MiB/s plus a minute for Cinder to copy the image into the volume.
        try:
            return os.path.getsize(params.file) / (50 * 1024 ** 2) + 60.0
        except OSError:
            return None

    def observe(self, ctx: StepContext, params: ImportVolumeParams) -> dict[str, Any]:
        from steps.openstack.volume import observe_volume

        return observe_volume(open_cloud(ctx, params), params)

    def plan(self, params: ImportVolumeParams, facts: dict[str, Any] | None) -> Plan:
        from steps.openstack.volume import plan_volume

        return plan_volume(params, facts)

    def apply(self, ctx: StepContext, params: ImportVolumeParams, plan: Plan) -> Result:
        from steps.openstack.volume import import_volume, observe_volume

        cloud = open_cloud(ctx, params)
        return import_volume(ctx, cloud, params, observe_volume(cloud, params))

    def verify(self, ctx: StepContext, params: ImportVolumeParams,
               result: Result | None) -> bool | None:
        from steps.openstack.volume import volume_ready

        return volume_ready(open_cloud(ctx, params), params, result)

    def revert(self, ctx: StepContext, params: ImportVolumeParams,
               record: dict[str, Any]) -> None:
        from steps.openstack.volume import undo_volume

        if record.get("volume_id") or record.get("image_id"):
            undo_volume(ctx, open_cloud(ctx, params), params, record)

    def revert_plan(self, params: ImportVolumeParams, record: dict[str, Any]) -> Plan:
        actions = []
        if record.get("volume_id"):
            actions.append(Action.change(f"delete volume '{params.volume_name}' "
                                         f"({record['volume_id']})"))
        if record.get("image_id") and record.get("image_created"):
            actions.append(Action.change(f"delete image {record['image_id']}"))
        return Plan.of(*actions) if actions else Plan.unchanged("this step created nothing")


__all__ = ["ExportResources", "ImportResources", "ImportVolume"]
