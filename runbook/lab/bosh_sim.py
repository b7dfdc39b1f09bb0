"""A ``bosh``-CLI-compatible director simulator for tests and the lab (not a BOSH director).

No BOSH director can run on a laptop, so this module models what the migration steps
need from one — deployments with their manifests, a cloud config, instances with a
desired state, processes and persistent disks, orphaned disks, numbered tasks and the
director-wide resurrection switch — in one JSON file, and answers the subset of
``bosh`` v2 commands the steps use, printing what bosh-cli prints.

Shapes it follows (cloudfoundry/bosh-cli and cloudfoundry/bosh, as summarised in the
project's Cloud Foundry reference, section 5):

* ``--json`` output is ``{"Tables": [...], "Blocks": [...], "Lines": [...]}``
  (``ui/json_ui.go`` ``uiResp``); a table is ``{"Content", "Header", "Rows", "Notes"}``
  whose keys are ``KeyifyHeader(title)`` (lower case, non-alphanumerics to ``_``);
  every cell is a string, multi-valued cells are joined with ``"\\n"``.
* ``instances`` (``cmd/instances.go``, Content ``instances``): ``instance`` ("ig/uuid"),
  [``process`` with ``--ps``], ``process_state``, ``az``, ``ips``, ``deployment``; with
  ``-i`` also ``state``, ``vm_cid``, ``vm_type``, ``disk_cids``, ``agent_id``, ``index``,
  ``bootstrap``, ``ignore``. With ``--ps`` each process is an extra row after its
  instance with an empty ``instance`` cell (how bosh-cli fills that cell in JSON is not
  confirmed; the step client accepts "", "~" or the instance name).
* Long-running commands run a numbered task and print ``Task N`` lines; a task that
  does not end ``done`` makes the command exit 1 with
  ``Expected task 'N' to succeed but state is 'error'`` (``director/task_client_request.go``).
  Task event lines are approximations of the CLI's event reporter.
* ``stop --soft`` leaves the VM (state ``stopped``), ``stop --hard`` deletes it but keeps
  the persistent disk (state ``detached``); ``attach-disk`` requires a stopped or
  detached instance, orphans the previous disk and un-orphans a disk with that CID
  (``AttachDisk#validate_instance``).
* The v2 CLI has ``update-resurrection on|off`` (director-wide) and no command that
  reads the switch; the simulator keeps it in the state file so tests can look.

Use it from Python (:class:`BoshLab`, :class:`BoshSim`) or as
``python -m runbook.lab.bosh_sim ARGS`` with the state file in ``BOSH_SIM_STATE``;
:meth:`BoshSim.install` writes a ``bosh`` wrapper script into a directory for PATH.
Failures are injected with :meth:`BoshSim.fail_next` (or ``sim-fail COMMAND [TARGET]
--message M``), task duration set with ``sim-task-seconds N``; every command line is
appended to ``calls`` in the state.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATE_ENV = "BOSH_SIM_STATE"
TASK_COMMANDS = {"deploy", "stop", "start", "delete-deployment", "attach-disk"}


def keyify(title: str) -> str:
    """bosh-cli ``KeyifyHeader``: lower case, runs of non-alphanumerics become ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _table(content: str, titles: list[str], rows: list[dict[str, str]]) -> dict[str, Any]:
    return {"Content": content, "Header": {keyify(t): t for t in titles}, "Rows": rows,
            "Notes": None}


class SimError(Exception):
    """A command failed; ``lines`` are printed as the CLI would."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[-1] if lines else "")
        self.lines = list(lines)


class BoshSim:
    """The simulated director behind one JSON state file."""

    def __init__(self, state_path: str | Path) -> None:
        self.path = Path(state_path)
        if not self.path.exists():
            self._write(self.empty_state())

    @staticmethod
    def empty_state() -> dict[str, Any]:
        return {"director": {"resurrection": True, "client": None, "client_secret": None,
                             "task_seconds": 0.0},
                "next_task": 1, "deployments": {}, "cloud_config": None,
                "orphaned_disks": [], "tasks": {}, "failures": [], "calls": []}

    # -- Python API for tests and the lab -------------------------------------------------

    def install(self, bin_dir: str | Path) -> Path:
        """Write an executable ``bosh`` into ``bin_dir`` that runs this simulator."""
        script = Path(bin_dir) / "bosh"
        script.write_text(
            "#!/bin/sh\n"
            f': "${{{STATE_ENV}:={self.path}}}"\n'
            f"export {STATE_ENV}\n"
            f'exec "{sys.executable}" -m runbook.lab.bosh_sim "$@"\n')
        script.chmod(0o755)
        return script

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.path.read_text()))

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write the state under an exclusive lock."""
        with open(str(self.path) + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.state()
            yield state
            self._write(state)

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def require_credentials(self, client: str, secret: str) -> None:
        with self.edit() as s:
            s["director"].update(client=client, client_secret=secret)

    def fail_next(self, command: str, target: str | None = None,
                  message: str = "Simulated failure", times: int = 1) -> None:
        """Make the next ``times`` tasks of ``command`` (on ``target``, an instance group or
        ``ig/id``, if given) end in state ``error`` with ``message``."""
        with self.edit() as s:
            s["failures"].append({"command": command, "target": target, "message": message,
                                  "remaining": times})

    def deploy_text(self, name: str, manifest: str) -> None:
        """Create or update a deployment directly (a seeded source foundation)."""
        with self.edit() as s:
            _converge(s, name, manifest)

    def calls(self) -> list[list[str]]:
        return list(self.state()["calls"])

    def instances(self, deployment: str) -> list[dict[str, Any]]:
        return list(self.state()["deployments"][deployment]["instances"])

    def run(self, argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
        """Execute one command line; returns (exit code, stdout)."""
        opts, args = _parse(argv)
        lines: list[str] = []
        out: dict[str, Any] = {"Tables": None, "Blocks": None, "Lines": lines}
        code = 0
        with self.edit() as state:
            # A failed command keeps what it did before failing (a director does too), its
            # task record, and the used-up injected failure.
            state["calls"].append(list(argv))
            try:
                self._check_auth(state, opts, environ, lines)
                command = args[0] if args else "help"
                handler = getattr(self, "cmd_" + command.replace("-", "_"), None)
                if handler is None:
                    raise SimError(f"Unknown command '{command}'")
                handler(state, opts, args[1:], out)
                lines.append("Succeeded")
            except SimError as exc:
                lines.extend(exc.lines)
                lines.append("Exit code 1")
                code = 1
        if opts.get("json"):
            return code, json.dumps(out, indent=2) + "\n"
        text = list(lines)
        for table in out["Tables"] or []:
            titles = list(table["Header"].values())
            text.append("\t".join(titles))
            for row in table["Rows"]:
                text.append("\t".join(row.get(k, "") for k in table["Header"]))
        text.extend(out["Blocks"] or [])
        return code, "\n".join(text) + "\n"

    def _check_auth(self, state: dict[str, Any], opts: dict[str, Any],
                    environ: dict[str, str], lines: list[str]) -> None:
        env_url = opts.get("environment") or environ.get("BOSH_ENVIRONMENT", "")
        if not env_url:
            raise SimError("Expected non-empty Director URL")
        client = opts.get("client") or environ.get("BOSH_CLIENT", "")
        secret = opts.get("client-secret") or environ.get("BOSH_CLIENT_SECRET", "")
        want = state["director"]
        if want.get("client") and (client != want["client"] or secret != want["client_secret"]):
            raise SimError("Fetching info:",
                           "  Director responded with non-successful status code '401' "
                           "response 'Not authorized: '/info''")
        lines.append(f"Using environment '{env_url}' as client '{client}'")

    # -- commands ---------------------------------------------------------------------------

    def _deployment(self, state: dict[str, Any], opts: dict[str, Any],
                    must_exist: bool = True) -> str:
        name = opts.get("deployment") or os.environ.get("BOSH_DEPLOYMENT", "")
        if not name:
            raise SimError("Expected non-empty deployment name")
        if must_exist and name not in state["deployments"]:
            raise SimError("Director responded with non-successful status code '404' response "
                           f"'{{\"code\":70000,\"description\":\"Deployment '{name}' "
                           "doesn't exist\"}'")
        return name

    def cmd_deployments(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                        out: dict[str, Any]) -> None:
        rows = [{"name": n, "release_s": "", "stemcell_s": "", "team_s": ""}
                for n in sorted(state["deployments"])]
        out["Tables"] = [_table("deployments", ["Name", "Release(s)", "Stemcell(s)", "Team(s)"],
                                rows)]

    def cmd_manifest(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                     out: dict[str, Any]) -> None:
        name = self._deployment(state, opts)
        out["Blocks"] = [state["deployments"][name]["manifest"]]

    def cmd_cloud_config(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                         out: dict[str, Any]) -> None:
        if state["cloud_config"] is None:
            raise SimError("No cloud config")
        out["Blocks"] = [state["cloud_config"]]

    def cmd_update_cloud_config(self, state: dict[str, Any], opts: dict[str, Any],
                                args: list[str], out: dict[str, Any]) -> None:
        state["cloud_config"] = _read_yaml_file(args)

    def cmd_update_resurrection(self, state: dict[str, Any], opts: dict[str, Any],
                                args: list[str], out: dict[str, Any]) -> None:
        if not args or args[0] not in ("on", "off"):
            raise SimError("Expected 'on' or 'off'")
        state["director"]["resurrection"] = args[0] == "on"

    def cmd_deploy(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                   out: dict[str, Any]) -> None:
        text = _read_yaml_file(args)
        import yaml

        name = opts.get("deployment") or yaml.safe_load(text).get("name", "")
        problem = _validate(state, yaml.safe_load(text))
        dry = bool(opts.get("dry-run"))
        desc = "create deployment" if name not in state["deployments"] else "update deployment"
        if dry:
            desc += " (dry run)"

        def work() -> list[str]:
            if problem:
                raise SimError(problem)
            if dry:
                return ["Preparing deployment: Rendering templates"]
            events = _converge(state, name, text)
            return events

        self._task(state, out, "deploy", name, desc, work, target=name)

    def cmd_delete_deployment(self, state: dict[str, Any], opts: dict[str, Any],
                              args: list[str], out: dict[str, Any]) -> None:
        name = self._deployment(state, opts, must_exist=False)
        if name not in state["deployments"]:
            return  # bosh-cli: deleting a missing deployment succeeds

        def work() -> list[str]:
            dep = state["deployments"].pop(name)
            return [f"Deleting instances: {i['group']}/{i['id']} ({i['index']})"
                    for i in dep["instances"]]

        self._task(state, out, "delete-deployment", name, "delete deployment", work, None)

    def cmd_stop(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                 out: dict[str, Any]) -> None:
        want = "detached" if opts.get("hard") else "stopped"
        self._change_state(state, opts, args, out, "stop", want)

    def cmd_start(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                  out: dict[str, Any]) -> None:
        self._change_state(state, opts, args, out, "start", "started")

    def _change_state(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                      out: dict[str, Any], command: str, want: str) -> None:
        name = self._deployment(state, opts)
        selector = args[0] if args else ""
        chosen = [i for i in state["deployments"][name]["instances"] if _matches(i, selector)]
        if selector and not chosen:
            raise SimError(f"Instance group '{selector.split('/')[0]}' "
                           f"doesn't exist in deployment '{name}'")
        verb = {"started": "Starting", "stopped": "Stopping", "detached": "Stopping"}[want]

        def work() -> list[str]:
            events = []
            for inst in chosen:
                events.append(f"Updating instance {inst['group']}: {inst['group']}/{inst['id']} "
                              f"({inst['index']})")
                failure = _take_failure(state, command, inst)
                if failure:
                    raise SimError(failure, *events)
                _set_state(inst, want)
            return events

        self._task(state, out, command, name, f"{verb.lower()} instance(s)", work, selector)

    def cmd_instances(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                      out: dict[str, Any]) -> None:
        name = self._deployment(state, opts)
        ps, details = bool(opts.get("ps")), bool(opts.get("details"))
        titles = ["Instance"] + (["Process"] if ps else []) + \
            ["Process State", "AZ", "IPs", "Deployment"]
        if details:
            titles += ["State", "VM CID", "VM Type", "Disk CIDs", "Agent ID", "Index",
                       "Bootstrap", "Ignore"]
        rows: list[dict[str, str]] = []
        for inst in state["deployments"][name]["instances"]:
            row = {"instance": f"{inst['group']}/{inst['id']}",
                   "process_state": _process_state(inst), "az": inst["az"],
                   "ips": "\n".join(inst["ips"]), "deployment": name}
            if ps:
                row["process"] = ""
            if details:
                row.update(state=inst["state"], vm_cid=inst["vm_cid"], vm_type=inst["vm_type"],
                           disk_cids="\n".join(inst["disks"]), agent_id=inst["agent_id"],
                           index=str(inst["index"]), bootstrap=_b(inst["bootstrap"]),
                           ignore="false")
            rows.append(row)
            if ps and inst["vm_cid"]:
                for proc in inst["processes"]:
                    prow = {k: "" for k in row}
                    prow.update(process=proc, process_state=_process_state(inst))
                    rows.append(prow)
        out["Tables"] = [_table("instances", titles, rows)]

    def cmd_attach_disk(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                        out: dict[str, Any]) -> None:
        name = self._deployment(state, opts)
        if len(args) < 2 or "/" not in args[0]:
            raise SimError("Expected INSTANCE-GROUP/INSTANCE-ID and DISK-CID arguments")
        found = [i for i in state["deployments"][name]["instances"] if _matches(i, args[0])]
        if not found:
            raise SimError(f"Instance '{args[0]}' doesn't exist in deployment '{name}'")
        inst, cid = found[0], args[1]

        def work() -> list[str]:
            if inst["state"] not in ("stopped", "detached"):
                raise SimError(f"Instance '{inst['group']}/{inst['id']}' in deployment '{name}' "
                               "must be in 'bosh stopped' state")
            failure = _take_failure(state, "attach-disk", inst)
            if failure:
                raise SimError(failure)
            orphaned = state["orphaned_disks"]
            orphaned[:] = [d for d in orphaned if d["cid"] != cid]
            for old in inst["disks"]:
                orphaned.append({"cid": old, "deployment": name,
                                 "instance": f"{inst['group']}/{inst['id']}"})
            inst["disks"] = [cid]
            return [f"attach disk {cid} to {inst['group']}/{inst['id']}"]

        self._task(state, out, "attach-disk", name, "attach disk", work, args[0])

    def cmd_disks(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                  out: dict[str, Any]) -> None:
        rows = [{"disk_cid": d["cid"], "deployment": d["deployment"], "instance": d["instance"]}
                for d in state["orphaned_disks"]]
        out["Tables"] = [_table("disks", ["Disk CID", "Deployment", "Instance"], rows)]

    def cmd_task(self, state: dict[str, Any], opts: dict[str, Any], args: list[str],
                 out: dict[str, Any]) -> None:
        task = state["tasks"].get(args[0] if args else "")
        if task is None:
            raise SimError(f"Task '{args[0] if args else ''}' doesn't exist")
        out["Lines"].extend(task["output"])

    # -- tasks --------------------------------------------------------------------------------

    def _task(self, state: dict[str, Any], out: dict[str, Any], command: str, deployment: str,
              description: str, work: Any, target: str | None) -> None:
        tid = state["next_task"]
        state["next_task"] = tid + 1
        lines: list[str] = out["Lines"]
        if deployment:
            lines.append(f"Using deployment '{deployment}'")
        started = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
        clock = time.strftime("%H:%M:%S", time.gmtime())
        output = [f"Task {tid}"]
        error = None
        failure = _take_failure(state, command, None, target) if command == "deploy" else None
        try:
            if failure:
                raise SimError(failure)
            events = work()
        except SimError as exc:
            error, events = exc.lines[0], exc.lines[1:]
        time.sleep(float(state["director"].get("task_seconds", 0)))
        output += [f"Task {tid} | {clock} | {e} (00:00:00)" for e in events]
        if error is not None:
            output.append(f"Task {tid} | {clock} | Error: {error}")
        result = "error" if error is not None else "done"
        output += [f"Task {tid} Started  {started}", f"Task {tid} Finished {started}",
                   f"Task {tid} Duration 00:00:00", f"Task {tid} {result}"]
        state["tasks"][str(tid)] = {"id": tid, "state": result, "description": description,
                                    "deployment": deployment, "result": error or "",
                                    "output": output}
        lines.extend(output)
        if error is not None:
            raise SimError(f"Expected task '{tid}' to succeed but state is 'error'")


# -- model helpers ---------------------------------------------------------------------------

def _b(value: bool) -> str:
    return "true" if value else "false"


def _process_state(inst: dict[str, Any]) -> str:
    if not inst["vm_cid"]:
        return ""
    return "running" if inst["state"] == "started" else "stopped"


def _matches(inst: dict[str, Any], selector: str) -> bool:
    if not selector:
        return True
    group, _, ident = selector.partition("/")
    return bool(inst["group"] == group and (not ident or ident in (inst["id"], str(inst["index"]))))


def _set_state(inst: dict[str, Any], want: str) -> None:
    inst["state"] = want
    if want == "detached":
        inst["vm_cid"] = ""
    elif not inst["vm_cid"]:
        inst["vm_cid"] = "vm-" + uuid.uuid4().hex[:12]


def _take_failure(state: dict[str, Any], command: str, inst: dict[str, Any] | None,
                  target: str | None = None) -> str | None:
    for failure in state["failures"]:
        if failure["command"] != command or failure["remaining"] <= 0:
            continue
        want = failure.get("target")
        if want and inst is not None and not _matches(inst, want):
            continue
        if want and inst is None and want != target:
            continue
        failure["remaining"] -= 1
        return str(failure["message"])
    return None


def _read_yaml_file(args: list[str]) -> str:
    if not args:
        raise SimError("Expected PATH argument")
    try:
        return Path(args[0]).read_text()
    except OSError as exc:
        raise SimError(f"Reading file '{args[0]}': {exc.strerror}") from None


def _validate(state: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """The director's checks against the cloud config that the steps rely on."""
    import yaml

    if not isinstance(manifest, dict) or not manifest.get("name"):
        return "Deployment manifest must have a 'name'"
    cloud = yaml.safe_load(state["cloud_config"] or "{}") or {}
    known = {kind: {item["name"] for item in cloud.get(kind, [])}
             for kind in ("azs", "vm_types", "networks", "disk_types")}
    for group in manifest.get("instance_groups", []):
        if not state["cloud_config"]:
            return "Deployment manifest instance groups require a cloud config"
        gname = group.get("name")
        for az in group.get("azs", []):
            if az not in known["azs"]:
                return f"Instance group '{gname}' must specify availability zone that " \
                       f"matches availability zones listed in cloud config"
        if group.get("vm_type") not in known["vm_types"]:
            return f"Instance group '{gname}' references an unknown vm type " \
                   f"'{group.get('vm_type')}'"
        disk = group.get("persistent_disk_type")
        if disk and disk not in known["disk_types"]:
            return f"Instance group '{gname}' references an unknown disk type '{disk}'"
        for net in group.get("networks", []):
            if net.get("name") not in known["networks"]:
                return f"Instance group '{gname}' references an unknown network " \
                       f"'{net.get('name')}'"
    return None


def _converge(state: dict[str, Any], name: str, text: str) -> list[str]:
    """Make the deployment's instances match the manifest; keeps existing instances."""
    import yaml

    manifest = yaml.safe_load(text) or {}
    cloud = yaml.safe_load(state.get("cloud_config") or "{}") or {}
    old = state["deployments"].get(name, {"instances": []})["instances"]
    fresh: list[dict[str, Any]] = []
    events = []
    taken = {ip for dep in state["deployments"].values() for i in dep["instances"]
             for ip in i["ips"]}
    for group in manifest.get("instance_groups", []):
        gname, count = group["name"], int(group.get("instances", 1))
        azs = group.get("azs") or ["z1"]
        nets = group.get("networks") or [{"name": "default"}]
        statics = list(nets[0].get("static_ips") or [])
        for index in range(count):
            prev = [i for i in old if i["group"] == gname and i["index"] == index]
            inst = prev[0] if prev else None
            if inst is None:
                az = azs[index % len(azs)]
                ip = statics[index] if index < len(statics) else \
                    _next_ip(cloud, nets[0].get("name"), az, taken)
                taken.add(ip)
                disk = group.get("persistent_disk_type") or group.get("persistent_disk")
                inst = {"group": gname, "id": str(uuid.uuid4()), "index": index, "az": az,
                        "ips": [ip], "state": "started", "vm_cid": "",
                        "agent_id": str(uuid.uuid4()), "bootstrap": index == 0,
                        "disks": ["disk-" + uuid.uuid4().hex[:12]] if disk else []}
                _set_state(inst, "started")
                events.append(f"Creating missing vms: {gname}/{inst['id']} ({index})")
            inst["vm_type"] = str(group.get("vm_type", ""))
            inst["processes"] = [j["name"] for j in group.get("jobs", [])]
            fresh.append(inst)
    state["deployments"][name] = {"manifest": text, "instances": fresh}
    return events or ["Updating deployment: no changes"]


def _next_ip(cloud: dict[str, Any], network: str | None, az: str, taken: set[str]) -> str:
    for net in cloud.get("networks", []):
        if net.get("name") != network:
            continue
        for subnet in net.get("subnets", []):
            if subnet.get("az", az) != az and az not in subnet.get("azs", []):
                continue
            if "range" not in subnet:
                continue
            hosts = ipaddress.ip_network(subnet["range"], strict=False).hosts()
            for offset, host in enumerate(hosts):
                if offset >= 10 and str(host) not in taken:  # skip gateway/reserved head
                    return str(host)
    base = 10 + len(taken)
    return f"10.244.{base // 250}.{base % 250 + 2}"


def _parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Global and command flags in bosh-cli spelling; returns (options, positionals)."""
    aliases = {"d": "deployment", "e": "environment", "n": "non-interactive", "i": "details",
               "p": "ps", "f": "failing"}
    valued = {"deployment", "environment", "client", "client-secret", "ca-cert",
              "disk-properties", "max-in-flight", "canaries", "message", "times"}
    opts: dict[str, Any] = {}
    args: list[str] = []
    it = iter(argv)
    for token in it:
        if token.startswith("-") and token != "-":
            key, eq, value = token.lstrip("-").partition("=")
            key = aliases.get(key, key)
            if key in valued:
                opts[key] = value if eq else next(it, "")
            else:
                opts[key] = True
        else:
            args.append(token)
    return opts, args


class BoshLab:
    """A simulated director living in a directory, for the lab and tests.

    ``with BoshLab() as lab:`` makes a temporary directory holding the state file and the
    ``bosh`` wrapper; ``lab.profile()`` is the ``bosh:`` part of a runbook target.
    """

    def __init__(self, root: str | Path | None = None, client: str = "admin",
                 client_secret: str | None = None) -> None:
        self.root = Path(root) if root else None
        self.client = client
        self.client_secret = client_secret
        self._tmp: Any = None
        self.sim: BoshSim | None = None
        self.cli: Path | None = None

    def start(self) -> BoshLab:
        if self.root is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="bosh-sim-")
            self.root = Path(self._tmp.name)
        self.root.mkdir(parents=True, exist_ok=True)
        self.sim = BoshSim(self.root / "state.json")
        if self.client_secret is not None:
            self.sim.require_credentials(self.client, self.client_secret)
        self.cli = self.sim.install(self.root)
        return self

    def stop(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BoshLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def profile(self, deployment: str = "cf",
                secret_reference: str = "${env:BOSH_CLIENT_SECRET}") -> dict[str, Any]:
        return {"environment": "https://127.0.0.1:25555", "client": self.client,
                "client_secret": secret_reference, "deployment": deployment,
                "cli": str(self.cli)}

    def seed(self, deployment: str, manifest: str, cloud_config: str | None = None) -> None:
        assert self.sim is not None, "start() the lab first"
        if cloud_config is not None:
            with self.sim.edit() as state:
                state["cloud_config"] = cloud_config
        self.sim.deploy_text(deployment, manifest)


def _admin(sim: BoshSim, argv: list[str]) -> int:
    """``sim-fail COMMAND [TARGET] [--message M] [--times N]``, ``sim-task-seconds N``,
    ``sim-state``: steer the simulator from a shell (not bosh commands)."""
    opts, args = _parse(argv)
    if args[0] == "sim-fail" and len(args) >= 2:
        sim.fail_next(args[1], args[2] if len(args) > 2 else None,
                      str(opts.get("message") or "Simulated failure"), int(opts.get("times") or 1))
    elif args[0] == "sim-task-seconds" and len(args) == 2:
        with sim.edit() as state:
            state["director"]["task_seconds"] = float(args[1])
    elif args[0] == "sim-state":
        sys.stdout.write(json.dumps(sim.state(), indent=1) + "\n")
    else:
        print(_admin.__doc__, file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    path = os.environ.get(STATE_ENV)
    if not path:
        print(f"{STATE_ENV} must name the simulator's state file", file=sys.stderr)
        return 2
    args = list(sys.argv[1:] if argv is None else argv)
    sim = BoshSim(path)
    if args and args[0].startswith("sim-"):
        return _admin(sim, args)
    code, text = sim.run(args, dict(os.environ))
    sys.stdout.write(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
