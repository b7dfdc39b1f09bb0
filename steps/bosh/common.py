"""What every BOSH step shares: the connection parameters and building the CLI client.

Target keys read (under ``targets.<name>.bosh``): ``environment`` (director URL),
``client``, ``client_secret`` (a secret reference), ``ca_cert`` (PEM text or a path, as
``BOSH_CA_CERT`` accepts), ``deployment`` and ``cli`` (the ``bosh`` executable, default
``bosh``). Step parameters of the same name override the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.api import Duration, Secret, StepContext, StepFailed, TargetRef, param, reveal_text
from steps.bosh.client import BoshCli, BoshSettings


@dataclass(frozen=True, kw_only=True)
class BoshParams:
    target: TargetRef = param(doc="connection profile whose 'bosh' settings are used")
    deployment: str | None = param(None, doc="deployment name (default: the profile's)")
    cli: str | None = param(None, doc="path of the bosh v2 CLI (default: profile or 'bosh')")
    command_timeout: Duration = param(Duration(3600), doc="kill one bosh command after this")


def settings(ctx: StepContext, target: str, params: BoshParams) -> BoshSettings:
    profile = ctx.target(target).get("bosh")
    if not isinstance(profile, dict):
        raise StepFailed(f"target '{target}' has no 'bosh' settings; add "
                         "bosh: {environment: ..., client: ..., client_secret: ..., "
                         "deployment: ...}")
    environment = _plain(profile.get("environment"))
    deployment = params.deployment or _plain(profile.get("deployment"))
    if not environment:
        raise StepFailed(f"target '{target}': bosh.environment (the director URL) is not set")
    if not deployment:
        raise StepFailed(f"target '{target}': no deployment given; set bosh.deployment "
                         "or the step's 'deployment' parameter")
    secret = profile.get("client_secret")
    if secret is not None and not isinstance(secret, Secret):
        raise StepFailed(f"target '{target}': bosh.client_secret must be a secret reference "
                         "like ${env:BOSH_CLIENT_SECRET}, never the value itself")
    return BoshSettings(environment=environment, deployment=deployment,
                        client=_plain(profile.get("client")), client_secret=secret,
                        ca_cert=_plain(profile.get("ca_cert")) or None,
                        cli=params.cli or _plain(profile.get("cli")) or "bosh",
                        timeout=float(params.command_timeout))


def director(ctx: StepContext, params: BoshParams, target: str | None = None) -> BoshCli:
    return BoshCli(settings(ctx, target or params.target, params), ctx.run)


def deployment_name(params: BoshParams) -> str:
    """For plan lines, which cannot see the profile: the override or a placeholder."""
    return params.deployment or f"<{params.target}'s deployment>"


def _plain(value: Any) -> str:
    # A CA certificate given by ${file:..} arrives as a Secret; it is not secret, but the
    # CLI needs its text. A missing setting is the empty string the CLI ignores.
    return reveal_text(value) or ""
