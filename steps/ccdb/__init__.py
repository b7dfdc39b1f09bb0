"""Cloud Controller database steps: ``ccdb.rewrite_hosts``."""
