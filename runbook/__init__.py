"""paas-runbook: declarative runbooks for moving a Cloud Foundry foundation between clouds."""

__version__ = "0.1.0"
