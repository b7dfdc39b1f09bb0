"""BOSH step types, registered by entry point (``bosh.deploy``, ``bosh.stop``,
``bosh.start``, ``bosh.instances``, ``bosh.attach_disk``).

Only the stdlib and ``runbook.api`` are imported at load time (the sibling modules below
import nothing else at their top level); Jinja2 and PyYAML are imported when a manifest
is rendered, so ``runbook validate`` stays fast.
"""

from steps.bosh.deploy import DeployManifest
from steps.bosh.instance import AttachDisk, ListInstances
from steps.bosh.lifecycle import StartInstances, StopInstances

__all__ = ["AttachDisk", "DeployManifest", "ListInstances", "StartInstances", "StopInstances"]
