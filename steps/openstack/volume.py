"""``openstack.import_volume``: image file -> Glance image -> Cinder volume, and back.

The image record is created and checkpointed before its data is sent, and the volume is
checkpointed as soon as Cinder accepts it, so revert can always find what this step made.
An existing volume of the same name that is ``available`` means the work is done; an
existing ``active`` image of the same name with the same sha512 is reused (and then not
deleted by revert, because this step did not make it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook.api import Action, Plan, Result, StepContext, StepFailed

if TYPE_CHECKING:
    from steps.openstack.client import Cloud
    from steps.openstack.step import ImportVolumeParams

TRANSIENT = ("creating", "downloading", "deleting", "extending")


def _image_name(params: ImportVolumeParams) -> str:
    return params.image_name or params.volume_name


def _gib(n: int) -> str:
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.2f} GiB"
    return f"{n / 1024 ** 2:.1f} MiB" if n >= 1024 ** 2 else f"{n} bytes"


def observe_volume(cloud: Cloud, params: ImportVolumeParams) -> dict[str, Any]:
    from steps.openstack.disk import inspect

    path = Path(params.file)
    found = None
    if path.is_file():  # an earlier step of the run may still have to write it
        disk = inspect(path)
        found = {"format": disk.format, "size": disk.size, "virtual_size": disk.virtual_size,
                 "min_gib": disk.min_gib, "md5": disk.md5, "sha512": disk.sha512}
    return {"file": found,
            "volumes": cloud.volumes(params.volume_name),
            "images": cloud.images(_image_name(params))}


def _checked(params: ImportVolumeParams, facts: dict[str, Any]) -> tuple[str, int]:
    """The disk format and volume size to use, or StepFailed for a bad combination."""
    found = facts["file"]
    if found is None:
        raise StepFailed(f"image file {params.file} does not exist or is not a file")
    fmt = params.disk_format or found["format"]
    if found["format"] != "raw" and fmt != found["format"]:
        raise StepFailed(f"{params.file} is a {found['format']} image but disk_format says "
                         f"{fmt}; fix disk_format or convert the file with qemu-img")
    if fmt != "raw" and found["format"] == "raw":
        raise StepFailed(f"{params.file} has no {fmt} header; it looks like a raw image: "
                         "set disk_format to raw or check the file")
    size = params.size_gb or found["min_gib"]
    if size < found["min_gib"]:
        raise StepFailed(f"size_gb {size} is smaller than the image's virtual size "
                         f"({_gib(found['virtual_size'])}); use at least {found['min_gib']}")
    return fmt, size


def _reusable_image(facts: dict[str, Any]) -> dict[str, Any] | None:
    return next((i for i in facts["images"] if i["status"] == "active"
                 and i.get("os_hash_value") == facts["file"]["sha512"]), None)


def _existing_volume(params: ImportVolumeParams, facts: dict[str, Any]) -> dict[str, Any] | None:
    volumes = facts["volumes"]
    if len(volumes) > 1:
        raise StepFailed(f"{len(volumes)} volumes are named '{params.volume_name}'; "
                         "delete the extra ones or choose another volume_name")
    if not volumes:
        return None
    volume = volumes[0]
    if volume["status"] != "available":
        raise StepFailed(f"volume '{params.volume_name}' already exists in state "
                         f"'{volume['status']}' ({volume['id']}); delete it or choose "
                         "another volume_name")
    return dict(volume)


def plan_volume(params: ImportVolumeParams, facts: dict[str, Any] | None) -> Plan:
    image = _image_name(params)
    if facts is None:
        return Plan.of(Action.unknown(f"upload {params.file} as image '{image}' and create "
                                      f"volume '{params.volume_name}' from it"))
    volume = _existing_volume(params, facts)
    if volume is not None:
        return Plan.unchanged(f"volume '{params.volume_name}' exists and is available "
                              f"({volume['id']}, {volume['size']} GiB)")
    if facts["file"] is None:
        return Plan.of(Action.unknown(f"upload {params.file} (not there yet) as image "
                                      f"'{image}' and create volume '{params.volume_name}'"))
    fmt, size = _checked(params, facts)
    actions = []
    reuse = _reusable_image(facts)
    if reuse is not None:
        actions.append(Action.read(f"reuse image '{image}' ({reuse['id']}), same sha512"))
    else:
        actions.append(Action.change(f"upload {params.file} ({fmt}, "
                                     f"{_gib(facts['file']['size'])}) as image '{image}'"))
    actions.append(Action.change(f"create {size} GiB volume '{params.volume_name}' from "
                                 f"image '{image}'"))
    actions.append(Action.read(f"wait up to {params.timeout:.0f}s for the volume to be "
                               "available"))
    if not params.keep_image and reuse is None:
        actions.append(Action.change(f"delete image '{image}' once the volume exists"))
    return Plan.of(*actions)


def import_volume(ctx: StepContext, cloud: Cloud, params: ImportVolumeParams,
                  facts: dict[str, Any]) -> Result:
    existing = _existing_volume(params, facts)
    if existing is not None:
        fmt = params.disk_format or (facts["file"] or {}).get("format")
        return Result(outputs={"volume_id": existing["id"], "image_id": existing.get("image_id"),
                               "size_gb": existing["size"], "disk_format": fmt,
                               "uploaded_bytes": 0}, changed=False)
    fmt, size = _checked(params, facts)
    record: dict[str, Any] = {"image_id": None, "image_created": False, "volume_id": None}
    uploaded = 0
    try:
        image = _reusable_image(facts)
        if image is None:
            image = cloud.create_image(_image_name(params), fmt, params.container_format,
                                       dict(params.properties))
            record.update(image_id=image["id"], image_created=True)
            ctx.checkpoint(dict(record))
            cloud.upload_image(image["id"], params.file)
            uploaded = facts["file"]["size"]
            _check_upload(cloud, image["id"], facts["file"])
        record["image_id"] = image["id"]
        attrs = {"name": params.volume_name, "size": size, "image_id": image["id"],
                 "description": params.description}
        attrs.update({k: v for k, v in (("volume_type", params.volume_type),
                                        ("availability_zone", params.availability_zone)) if v})
        volume = cloud.create_volume(attrs)
        record["volume_id"] = volume["id"]
        ctx.checkpoint(dict(record))
        _wait_available(ctx, cloud, params, volume["id"])
        if not params.keep_image and record["image_created"]:
            cloud.delete_image(image["id"])
            record["image_created"] = False  # gone already; revert must not look for it
            ctx.checkpoint(dict(record))
    except StepFailed as exc:
        raise StepFailed(str(exc), record=record) from None
    return Result(outputs={"volume_id": record["volume_id"], "image_id": image["id"],
                           "size_gb": size, "disk_format": fmt, "uploaded_bytes": uploaded},
                  record=record)


def _check_upload(cloud: Cloud, image_id: str, local: dict[str, Any]) -> None:
    image = cloud.get_image(image_id)
    if image is None or image["status"] != "active":
        state = image["status"] if image else "gone"
        raise StepFailed(f"image {image_id} is '{state}' after the upload, not 'active'")
    remote = image.get("os_hash_value") or image.get("checksum")
    if remote not in (local["sha512"], local["md5"]):
        raise StepFailed(f"image {image_id} has a different checksum than the file after "
                         "the upload; the data was damaged on the way, run the step again")


def _wait_available(ctx: StepContext, cloud: Cloud, params: ImportVolumeParams,
                    volume_id: str) -> None:
    deadline = ctx.clock.monotonic() + params.timeout
    while True:
        volume = cloud.get_volume(volume_id)
        status = volume["status"] if volume else "gone"
        if status == "available":
            return
        if status not in TRANSIENT:
            raise StepFailed(f"volume '{params.volume_name}' ({volume_id}) went to "
                             f"'{status}' instead of 'available'; see the Cinder logs")
        if ctx.clock.monotonic() >= deadline:
            raise StepFailed(f"volume '{params.volume_name}' ({volume_id}) is still "
                             f"'{status}' after {params.timeout:.0f}s; raise 'timeout' or "
                             "check the Cinder backend")
        ctx.sleep(params.interval)


def volume_ready(cloud: Cloud, params: ImportVolumeParams,
                 result: Result | None) -> bool:
    volume_id = result.outputs.get("volume_id") if result else None
    if volume_id:
        volume = cloud.get_volume(str(volume_id))
    else:
        found = cloud.volumes(params.volume_name)
        volume = found[0] if len(found) == 1 else None
    return volume is not None and volume["status"] == "available"


def undo_volume(ctx: StepContext, cloud: Cloud, params: ImportVolumeParams,
                record: dict[str, Any]) -> None:
    """Delete the volume (after it leaves a transient state, as Cinder requires) and the
    image this step created. Missing things are fine: revert may run twice."""
    if record.get("volume_id"):
        deadline = ctx.clock.monotonic() + params.timeout
        while True:
            volume = cloud.get_volume(record["volume_id"])
            if volume is None:
                break
            if volume["status"] not in TRANSIENT:
                cloud.delete_volume(record["volume_id"])
                break
            if ctx.clock.monotonic() >= deadline:
                raise StepFailed(f"volume {record['volume_id']} stayed '{volume['status']}' "
                                 f"for {params.timeout:.0f}s and could not be deleted")
            ctx.sleep(params.interval)
    if record.get("image_id") and record.get("image_created"):
        cloud.delete_image(record["image_id"])
