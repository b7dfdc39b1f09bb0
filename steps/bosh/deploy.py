"""``bosh.deploy``: render the manifests for the target IaaS and deploy the parallel stack.

observe renders in memory, reads the director's deployment list, the deployment's current
manifest, the cloud config, and - when ``source`` names another profile - the source
foundation's manifest and cloud config; it runs ``bosh deploy --dry-run`` when the cloud
config already matches (a dry run against the old cloud config would only report the
names the new one is about to add). The plan shows the structural diff against the
source and the current deployment. Revert deletes the deployment only if this run
created it, and puts back a cloud config this run replaced.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from steps.bosh.client import BoshCli, BoshError
from steps.bosh.common import BoshParams, deployment_name, director

DIFF_LINES = 40


@dataclass(frozen=True, kw_only=True)
class DeployParams(BoshParams):
    iaas: Literal["vcloud", "openstack", "aws", "cloudstack"] = param(
        doc="which IaaS overlay of manifests/ to render")
    variables: str | None = param(None, doc="YAML file with the manifest variables")
    vars: dict[str, Any] = param(factory=dict, doc="variables set here (override the file)")
    templates: str | None = param(None, doc="manifest templates folder (default: manifests/)")
    source: TargetRef | None = param(None, doc="profile of the foundation to diff against")
    update_cloud_config: bool = param(True, doc="also replace the director's default cloud "
                                      "config (meant for the new stack's own director)")
    command_timeout: Duration = param(Duration(4 * 3600), doc="kill one bosh command after this")


class DeployManifest(Step[DeployParams]):
    """Deploy the clone of the foundation on the new IaaS from one set of variables.

    Reads target keys ``bosh.*`` of ``target`` (and of ``source`` for the diff). Outputs
    ``deployment``, ``created``, ``task_id``, ``manifest`` and ``cloud_config`` (paths of
    the rendered files in the run's artifacts) and ``placement`` (group -> zones).
    """

    Params = DeployParams
    idempotent = True
    outputs = ("deployment", "created", "task_id", "manifest", "cloud_config", "placement")

    def render(self, params: DeployParams, deployment: str) -> Any:
        from steps.bosh.manifest import render_texts

        return render_texts(params.iaas, _vars(params, deployment), params.templates)

    def observe(self, ctx: StepContext, params: DeployParams) -> dict[str, Any]:
        from steps.bosh.manifest import structural_diff, zone_counts

        bosh = director(ctx, params)
        dep = bosh.settings.deployment
        rendered = self.render(params, dep)
        try:
            exists = dep in bosh.deployments()
            current = bosh.manifest() if exists else None
            cloud = bosh.cloud_config()
            facts: dict[str, Any] = {
                "deployment": dep, "exists": exists,
                "manifest_diff": structural_diff(current, rendered.manifest) if exists else [],
                "cloud_diff": structural_diff(cloud, rendered.cloud_config)
                if params.update_cloud_config else [],
                "has_cloud_config": cloud is not None}
            if params.source:
                src = director(ctx, params, params.source)
                facts["source"] = f"{params.source} ({src.settings.deployment})"
                facts["source_diff"] = (
                    structural_diff(src.manifest(), rendered.manifest)
                    + [f"cloud config {line}" for line in
                       structural_diff(src.cloud_config(), rendered.cloud_config)])
            facts["dry_run"] = None
            if not facts["cloud_diff"] or not params.update_cloud_config:
                facts["dry_run"] = self._dry_run(bosh, rendered.manifest)
        except BoshError as exc:
            raise StepFailed(str(exc)) from None
        groups = (rendered_groups := _groups(rendered.manifest))
        facts["instances"] = sum(int(g.get("instances", 1)) for g in groups)
        facts["groups"] = len(rendered_groups)
        zones = sorted({z for zs in rendered.placement.values() for z in zs})
        facts["per_zone"] = zone_counts(groups, rendered.placement, zones)
        return facts

    def _dry_run(self, bosh: BoshCli, manifest: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.yml"
            path.write_text(manifest)
            try:
                outcome = bosh.deploy(str(path), dry_run=True)
            except BoshError as exc:
                return {"ok": False, "task_id": exc.task_id, "error": str(exc)}
        return {"ok": True, "task_id": outcome.task_id, "error": ""}

    def plan(self, params: DeployParams, facts: dict[str, Any] | None) -> Plan:
        dep = facts["deployment"] if facts else deployment_name(params)
        if facts is None:
            return Plan.of(Action.read(f"render {params.iaas} manifest and cloud config"),
                           Action.change(f"bosh -d {dep} deploy (rendered manifest)"),
                           reason="director not observed")
        if facts["exists"] and not facts["manifest_diff"] and not facts["cloud_diff"]:
            return Plan.unchanged(f"deployment '{dep}' already runs the rendered manifest")
        spread = " ".join(f"{z}={n}" for z, n in facts["per_zone"].items())
        actions = [Action.read(f"render {params.iaas} manifest for '{dep}': {facts['groups']} "
                               f"instance groups, {facts['instances']} instances ({spread})")]
        if facts["cloud_diff"]:
            actions.append(Action.change(f"bosh update-cloud-config "
                                         f"({len(facts['cloud_diff'])} changes)"))
        dry = facts["dry_run"]
        if dry is None:
            actions.append(Action.read(f"bosh -d {dep} deploy --dry-run: skipped until the "
                                       "cloud config is updated"))
        elif dry["ok"]:
            actions.append(Action.read(f"bosh -d {dep} deploy --dry-run: task "
                                       f"{dry['task_id']} done"))
        else:
            actions.append(Action.read(f"bosh -d {dep} deploy --dry-run FAILED: {dry['error']}"))
        verb = f"update ({len(facts['manifest_diff'])} changes)" if facts["exists"] \
            else "create"
        actions.append(Action.change(f"bosh -d {dep} deploy: {verb}"))
        return Plan.of(*actions, reason=_diff_note(facts))

    def apply(self, ctx: StepContext, params: DeployParams, plan: Plan) -> Result:
        from steps.bosh.manifest import render_manifest, structural_diff

        bosh = director(ctx, params)
        dep = bosh.settings.deployment
        out = ctx.artifact_dir / f"{ctx.safe_step_id}-{dep}.yml"
        files = render_manifest(params.iaas, _vars(params, dep), out, params.templates)
        record: dict[str, Any] = {"deployment": dep, "created": False,
                                  "previous_cloud_config": None, "cloud_config_changed": False}
        try:
            exists = dep in bosh.deployments()
            record["created"] = not exists
            cloud = bosh.cloud_config()
            if params.update_cloud_config and structural_diff(cloud, files.cloud_config):
                if cloud is not None:
                    keep = ctx.artifact_dir / f"{ctx.safe_step_id}-previous-cloud-config.yml"
                    keep.write_text(cloud)
                    record["previous_cloud_config"] = str(keep)
                record["cloud_config_changed"] = True
                ctx.checkpoint(record)
                bosh.update_cloud_config(str(files.cloud_config_path))
            ctx.checkpoint(record)  # a half-created deployment is still ours to delete
            outcome = bosh.deploy(str(files.manifest_path))
        except BoshError as exc:
            raise StepFailed(str(exc), record=record) from None
        return Result(outputs={"deployment": dep, "created": not exists,
                               "task_id": outcome.task_id, "manifest": str(files.manifest_path),
                               "cloud_config": str(files.cloud_config_path),
                               "placement": files.placement},
                      record=record)

    def verify(self, ctx: StepContext, params: DeployParams, result: Result | None) -> bool:
        from steps.bosh.manifest import structural_diff

        bosh = director(ctx, params)
        current = bosh.manifest()
        if current is None:
            return False
        if structural_diff(current, self.render(params, bosh.settings.deployment).manifest):
            return False
        return all(i.running for i in bosh.instances())

    def revert_plan(self, params: DeployParams, record: dict[str, Any]) -> Plan:
        dep = record.get("deployment", deployment_name(params))
        actions = []
        if record.get("created"):
            actions.append(Action.change(f"bosh -d {dep} delete-deployment"))
        if record.get("cloud_config_changed") and record.get("previous_cloud_config"):
            actions.append(Action.change("bosh update-cloud-config (the previous one)"))
        if not actions:
            return Plan.unchanged(f"deployment '{dep}' existed before this run; left as it is")
        return Plan.of(*actions)

    def revert(self, ctx: StepContext, params: DeployParams, record: dict[str, Any]) -> None:
        bosh = director(ctx, params)
        try:
            if record.get("created") and record["deployment"] in bosh.deployments():
                bosh.delete_deployment()
            previous = record.get("previous_cloud_config")
            if record.get("cloud_config_changed") and previous:
                bosh.update_cloud_config(previous)
        except BoshError as exc:
            raise StepFailed(str(exc)) from None


def _vars(params: DeployParams, deployment: str) -> dict[str, Any]:
    from steps.bosh.manifest import load_variables

    data = load_variables(params.variables) if params.variables else {}
    data.update(params.vars)
    data["name"] = deployment  # the manifest must carry the name bosh -d is given
    return data


def _groups(manifest: str) -> list[dict[str, Any]]:
    import yaml

    return list((yaml.safe_load(manifest) or {}).get("instance_groups") or [])


def _diff_note(facts: dict[str, Any]) -> str:
    parts = []
    if "source_diff" in facts:
        diff = facts["source_diff"]
        parts.append(f"differences from source {facts['source']}: {len(diff)}")
        parts += ["  " + line for line in diff[:DIFF_LINES]]
        if len(diff) > DIFF_LINES:
            parts.append(f"  ... and {len(diff) - DIFF_LINES} more")
    if facts["exists"] and facts["manifest_diff"]:
        parts.append(f"differences from the deployed manifest: {len(facts['manifest_diff'])}")
        parts += ["  " + line for line in facts["manifest_diff"][:DIFF_LINES]]
    return "\n".join(parts)
