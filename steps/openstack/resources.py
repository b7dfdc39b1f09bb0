"""The resource file and the pure comparison behind ``openstack.export``/``openstack.import``.

The file is YAML an operator edits between export and import (the OS-Migrate workflow of
seeds/004): one section per kind, resources referring to each other by *name*, only the
fields that matter for a move. A field left out (or null) is neither set nor compared, so
deleting a line is how an operator says "let the destination cloud decide".

::

    format: paas-runbook/openstack-resources/v1
    networks:        [{name: cf, mtu: 1450, admin_state_up: true, ...}]
    subnets:         [{name: cf-z1, network: cf, cidr: 10.0.16.0/20, ...}]
    routers:         [{name: cf-router, external_network: public, interfaces: [cf-z1]}]
    security_groups: [{name: cf-bosh, rules: [{direction: ingress, protocol: tcp, ...}]}]

:func:`diff` turns (file, destination facts) into an ordered list of operations; plan,
apply and verify all use it, so what the plan shows is what apply does.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from runbook.api import StepFailed

FORMAT = "paas-runbook/openstack-resources/v1"
KINDS = ("networks", "subnets", "routers", "security_groups")
SINGULAR = {"networks": "network", "subnets": "subnet", "routers": "router",
            "security_groups": "security group"}

# Fields copied from the cloud into the file, per kind (Neutron body names).
NETWORK_FIELDS = ("description", "mtu", "admin_state_up", "port_security_enabled", "shared")
SUBNET_FIELDS = ("description", "cidr", "ip_version", "gateway_ip", "enable_dhcp",
                 "dns_nameservers", "allocation_pools", "host_routes")
SUBNET_FIXED = ("cidr", "ip_version")  # Neutron cannot change these on an existing subnet
ROUTER_FIELDS = ("description", "admin_state_up")
GROUP_FIELDS = ("description",)
RULE_FIELDS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
               "remote_ip_prefix", "remote_group")

Resource = dict[str, Any]

#: the allow-all egress rules Neutron gives every new security group
NEUTRON_DEFAULT_RULES = {("egress", e, None, None, None, None, None) for e in ("IPv4", "IPv6")}
Op = dict[str, Any]


def select(names: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """Names matching any ``include`` glob and no ``exclude`` glob, in their order."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in include)
            and not any(fnmatch.fnmatchcase(n, g) for g in exclude)]


def filtered(doc: dict[str, Any], kinds: list[str], include: list[str],
             exclude: list[str]) -> dict[str, list[Resource]]:
    """The sections of ``doc`` chosen by kind and name globs."""
    out: dict[str, list[Resource]] = {}
    for kind in KINDS:
        items = doc.get(kind) or []
        if kind not in kinds:
            out[kind] = []
            continue
        keep = set(select([str(r.get("name")) for r in items], include, exclude))
        out[kind] = [r for r in items if str(r.get("name")) in keep]
    return out


def check_document(doc: Any, source: str) -> dict[str, Any]:
    """Reject a file that is not a resource file, naming the problem and the file."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StepFailed(f"{source} is not an OpenStack resource file (its 'format' must be "
                         f"'{FORMAT}'); write it with openstack.export")
    for kind in KINDS:
        items = doc.get(kind) or []
        if not isinstance(items, list):
            raise StepFailed(f"{source}: '{kind}' must be a list")
        seen: set[str] = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item.get("name"):
                raise StepFailed(f"{source}: {kind}[{i}] needs a 'name'")
            if item["name"] in seen:
                raise StepFailed(f"{source}: two {kind} are named '{item['name']}'; "
                                 "names must be unique because imports match by name")
            seen.add(item["name"])
    return doc


def _by_name(items: list[Resource], kind: str) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for item in items:
        name = item.get("name") or ""
        if name in out:
            raise StepFailed(f"the destination cloud has two {kind} named '{name}'; "
                             "rename one so resources can be matched by name")
        out[name] = item
    return out


def _changes(wanted: Resource, have: Resource, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: wanted[f] for f in fields
            if wanted.get(f) is not None and _norm(wanted[f]) != _norm(have.get(f))}


def _norm(value: Any) -> Any:
    # Lists of nameservers or pools compare as given; dict keys in any order.
    if isinstance(value, dict):
        return sorted((k, _norm(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


# Neutron accepts a protocol by name or number, and "any" for none; compare one spelling.
PROTOCOL_NAMES = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "any": None}


def rule_key(rule: Resource) -> tuple[Any, ...]:
    """What makes two rules the same rule (the description is not part of it)."""
    key = {f: rule.get(f) for f in RULE_FIELDS}
    key["ethertype"] = key["ethertype"] or "IPv4"
    protocol = key["protocol"]
    if protocol is not None:
        text = str(protocol).lower()
        key["protocol"] = PROTOCOL_NAMES.get(text, text)
    return tuple(key[f] for f in RULE_FIELDS)


def describe_rule(rule: Resource) -> str:
    ports = ""
    if rule.get("port_range_min") is not None:
        low, high = rule["port_range_min"], rule.get("port_range_max")
        ports = f" {low}" if high in (None, low) else f" {low}-{high}"
    peer = rule.get("remote_ip_prefix") or (f"group '{rule['remote_group']}'"
                                            if rule.get("remote_group") else "anywhere")
    side = "from" if rule.get("direction", "ingress") == "ingress" else "to"
    return (f"{rule.get('direction', 'ingress')} {rule.get('ethertype') or 'IPv4'} "
            f"{rule.get('protocol') or 'any'}{ports} {side} {peer}")


def diff(wanted: dict[str, list[Resource]], have: dict[str, list[Resource]],
         all_wanted: dict[str, list[Resource]] | None = None) -> tuple[list[Op], list[Op]]:
    """Operations that make the destination ``have`` hold ``wanted``, and the names of what
    already matches. ``have`` is the destination as :mod:`steps.openstack.client` reads it.

    A reference (a subnet's network, a router's subnets or external network, a rule's
    remote group) resolves to something being imported or already on the destination;
    otherwise :class:`StepFailed` names the missing dependency, before any change.
    """
    ops: list[Op] = []
    same: list[Op] = []
    nets = _by_name(have["networks"], "networks")
    subs = _by_name(have["subnets"], "subnets")
    routers = _by_name(have["routers"], "routers")
    groups = _by_name(have["security_groups"], "security groups")
    net_names = set(nets) | {n["name"] for n in wanted["networks"]}
    sub_names = set(subs) | {s["name"] for s in wanted["subnets"]}
    group_names = set(groups) | {g["name"] for g in wanted["security_groups"]}
    filtered_out = {k: {r["name"] for r in (all_wanted or {}).get(k, [])} for k in KINDS}

    def need(kind: str, name: str, known: set[str], who: str) -> None:
        if name not in known:
            hint = (" (it is in the file but excluded by the filters)"
                    if name in filtered_out[kind] else "")
            raise StepFailed(f"{who} needs {SINGULAR[kind]} '{name}', which is neither on the "
                             f"destination cloud nor imported by this step{hint}; import it "
                             f"first or fix the reference in the resource file")

    for net in wanted["networks"]:
        _create_or_update(ops, same, "network", net, nets.get(net["name"]), NETWORK_FIELDS)
    for sub in wanted["subnets"]:
        need("networks", sub.get("network", ""), net_names, f"subnet '{sub['name']}'")
        existing = subs.get(sub["name"])
        if existing is not None:
            net_of = next((n["name"] for n in have["networks"]
                           if n["id"] == existing.get("network_id")), None)
            fixed = {f: sub[f] for f in SUBNET_FIXED
                     if sub.get(f) is not None and sub[f] != existing.get(f)}
            if net_of != sub.get("network"):
                fixed["network"] = sub.get("network")
            if fixed:
                what = ", ".join(f"{k} {existing.get(k, net_of) if k != 'network' else net_of}"
                                 f" (file: {v})" for k, v in fixed.items())
                raise StepFailed(f"subnet '{sub['name']}' already exists on the destination "
                                 f"with {what}; Neutron cannot change that in place: rename "
                                 f"or delete one of them")
        _create_or_update(ops, same, "subnet", sub, existing, SUBNET_FIELDS,
                          refs={"network": sub["network"]})
    for group in wanted["security_groups"]:
        existing = groups.get(group["name"])
        _create_or_update(ops, same, "security group", group, existing, GROUP_FIELDS)
        present = {rule_key(_with_group_names(r, have)) for r in
                   (existing or {}).get("rules", [])}
        if existing is None:
            present |= NEUTRON_DEFAULT_RULES  # Neutron adds these to every new group
        for rule in group.get("rules") or []:
            if rule.get("remote_group"):
                need("security_groups", rule["remote_group"], group_names,
                     f"a rule of security group '{group['name']}'")
            if rule_key(rule) in present:
                continue
            ops.append({"op": "create_rule", "kind": "security group rule",
                        "name": group["name"], "attrs": dict(rule)})
    for router in wanted["routers"]:
        ext = router.get("external_network")
        if ext:
            need("networks", ext, net_names, f"router '{router['name']}'")
        existing = routers.get(router["name"])
        extra = {"external_network": ext} if ext else {}
        if existing is not None:
            extra = {k: v for k, v in extra.items() if v != _external_name(existing, have)}
        _create_or_update(ops, same, "router", router, existing, ROUTER_FIELDS, extra=extra)
        attached = {s["name"] for s in have["subnets"]
                    if s["id"] in (existing or {}).get("interface_subnet_ids", [])}
        for sub_name in router.get("interfaces") or []:
            need("subnets", sub_name, sub_names, f"router '{router['name']}'")
            if sub_name not in attached:
                ops.append({"op": "add_interface", "kind": "router interface",
                            "name": router["name"], "subnet": sub_name})
    return ops, same


def _create_or_update(ops: list[Op], same: list[Op], kind: str, wanted: Resource,
                      existing: Resource | None, fields: tuple[str, ...],
                      refs: dict[str, str] | None = None,
                      extra: dict[str, Any] | None = None) -> None:
    extra = extra or {}
    if existing is None:
        attrs = {f: wanted[f] for f in fields if wanted.get(f) is not None}
        ops.append({"op": "create", "kind": kind, "name": wanted["name"],
                    "attrs": {**attrs, **extra}, "refs": refs or {}})
        return
    changes = {**_changes(wanted, existing, fields), **extra}
    if changes:
        previous = {k: existing.get(k) for k in changes if k != "external_network"}
        if "external_network" in changes:
            previous["external_network_id"] = existing.get("external_network_id")
        ops.append({"op": "update", "kind": kind, "name": wanted["name"],
                    "id": existing["id"], "attrs": changes, "previous": previous})
    else:
        same.append({"kind": kind, "name": wanted["name"], "id": existing["id"]})


def _with_group_names(rule: Resource, have: dict[str, list[Resource]]) -> Resource:
    """A destination rule with its remote group id replaced by that group's name."""
    out = dict(rule)
    gid = out.pop("remote_group_id", None)
    out["remote_group"] = next((g["name"] for g in have["security_groups"]
                                if g["id"] == gid), gid)
    return out


def _external_name(router: Resource, have: dict[str, list[Resource]]) -> str | None:
    ext = router.get("external_network_id")
    return next((n["name"] for n in have["networks"] if n["id"] == ext), ext)


def describe(op: Op) -> str:
    """One plan line for an operation."""
    if op["op"] == "create_rule":
        return f"add rule to security group '{op['name']}': {describe_rule(op['attrs'])}"
    if op["op"] == "add_interface":
        return f"attach subnet '{op['subnet']}' to router '{op['name']}'"
    if op["op"] == "update":
        changes = ", ".join(f"{k} {op['previous'].get(k, op['previous'].get(k + '_id'))!r} -> "
                            f"{v!r}" for k, v in op["attrs"].items())
        return f"update {op['kind']} '{op['name']}': {changes}"
    where = "".join(f" in {k} '{v}'" for k, v in op.get("refs", {}).items())
    detail = f" ({op['attrs']['cidr']})" if "cidr" in op["attrs"] else ""
    return f"create {op['kind']} '{op['name']}'{where}{detail}"


def export_document(have: dict[str, list[Resource]], everything: dict[str, list[Resource]],
                    cloud: str) -> dict[str, Any]:
    """The file content for the resources ``have`` (already filtered), sorted by name.
    References are named from ``everything`` the cloud showed, so a filtered-out network
    or group is still referred to by name (and import reports it if it is missing)."""
    net_name = {n["id"]: n["name"] for n in everything["networks"]}
    sub_name = {s["id"]: s["name"] for s in everything["subnets"]}
    group_name = {g["id"]: g["name"] for g in everything["security_groups"]}
    doc: dict[str, Any] = {"format": FORMAT, "cloud": cloud}
    doc["networks"] = [_pick(n, NETWORK_FIELDS) for n in have["networks"]]
    doc["subnets"] = [{**_pick(s, SUBNET_FIELDS),
                       "network": net_name.get(s["network_id"], s["network_id"])}
                      for s in have["subnets"]]
    doc["routers"] = [{**_pick(r, ROUTER_FIELDS),
                       "external_network": net_name.get(r.get("external_network_id") or "",
                                                        r.get("external_network_id")),
                       "interfaces": sorted(sub_name.get(i, i)
                                            for i in r.get("interface_subnet_ids", []))}
                      for r in have["routers"]]
    doc["security_groups"] = [
        {**_pick(g, GROUP_FIELDS),
         "rules": sorted(({**{f: r.get(f) for f in RULE_FIELDS if f != "remote_group"},
                           "remote_group": group_name.get(r.get("remote_group_id") or "",
                                                          r.get("remote_group_id")),
                           "description": r.get("description") or ""}
                          for r in g.get("rules", [])), key=lambda r: str(rule_key(r)))}
        for g in have["security_groups"]]
    for kind in KINDS:
        doc[kind] = sorted(doc[kind], key=lambda r: r["name"])
    return doc


def _pick(item: Resource, fields: tuple[str, ...]) -> Resource:
    return {"name": item["name"], **{f: item.get(f) for f in fields}}
