"""openstack.import_volume through the real openstacksdk against the fake Glance and Cinder."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from runbook.api import FakeClock, StepFailed
from runbook.testing import make_params
from steps.openstack.disk import GIB, detect
from steps.openstack.step import ImportVolume


def qcow2(path: Path, virtual_size: int, payload: bytes = b"") -> Path:
    """A file with a qcow2 version 3 header (magic, version, ..., size at byte 24)."""
    header = b"QFI\xfb" + struct.pack(">I", 3) + bytes(16) + struct.pack(">Q", virtual_size)
    path.write_bytes(header + bytes(72) + payload)
    return path


def params(file: Path, **extra: Any) -> Any:
    return make_params(ImportVolume, {"target": "destination", "file": str(file),
                                      "volume_name": "blobstore", "interval": "5s", **extra})


def test_headers_give_format_and_virtual_size(tmp_path: Path) -> None:
    assert detect(qcow2(tmp_path / "a.qcow2", 10 * GIB)) == ("qcow2", 10 * GIB)
    sparse = tmp_path / "b.vmdk"
    sparse.write_bytes(b"KDMV" + struct.pack("<I", 1) + struct.pack("<I", 3)
                       + struct.pack("<Q", 4 * 1024 * 2048) + bytes(500))
    assert detect(sparse) == ("vmdk", 4 * GIB)
    descriptor = tmp_path / "c.vmdk"
    descriptor.write_text('# Disk DescriptorFile\nversion=1\nRW 2097152 VMFS "c-flat.vmdk"\n')
    assert detect(descriptor) == ("vmdk", GIB)
    raw = tmp_path / "d.img"
    raw.write_bytes(bytes(4096))
    assert detect(raw) == ("raw", 4096)


def test_upload_create_wait_then_unchanged_and_revert(clouds: Any) -> None:
    image = qcow2(clouds.tmp / "disk.qcow2", 3 * GIB + 1, payload=b"blob" * 5000)
    clock = FakeClock()
    ctx = clouds.context(clock=clock)
    step, p = ImportVolume(), params(image)
    plan = step.plan(p, step.observe(ctx, p))
    assert [a.description for a in plan.actions] == [
        f"upload {image} (qcow2, 20104 bytes) as image 'blobstore'",
        "create 4 GiB volume 'blobstore' from image 'blobstore'",
        "wait up to 1800s for the volume to be available"]
    result = step.apply(ctx, p, plan)
    volume = clouds.dst.find("volumes", name="blobstore")[0]
    stored = clouds.dst.find("images", name="blobstore")[0]
    assert result.outputs == {"volume_id": volume["id"], "image_id": stored["id"],
                              "size_gb": 4, "disk_format": "qcow2",
                              "uploaded_bytes": image.stat().st_size}
    assert (volume["status"], volume["size"]) == ("available", 4)
    assert stored["disk_format"] == "qcow2"
    assert stored["os_hash_value"] == hashlib.sha512(image.read_bytes()).hexdigest()
    assert clock.sleeps == [5.0]  # creating -> downloading -> available, one pause
    assert ctx.checkpoints[0] == {"image_id": stored["id"],  # type: ignore[attr-defined]
                                  "image_created": True, "volume_id": None}
    assert step.verify(ctx, p, result) is True

    again = step.plan(p, step.observe(ctx, p))
    assert again.mutation == "unchanged"
    assert again.reason == f"volume 'blobstore' exists and is available ({volume['id']}, 4 GiB)"

    step.revert(ctx, p, result.record)
    assert clouds.dst.find("volumes") == [] and clouds.dst.find("images") == []
    step.revert(ctx, p, result.record)  # idempotent


def test_a_volume_that_ends_in_error_fails_and_revert_cleans_up(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(bytes(2 << 20))
    clouds.dst.failing_volumes.add("blobstore")
    ctx = clouds.context(clock=FakeClock())
    step, p = ImportVolume(), params(image)
    with pytest.raises(StepFailed) as caught:
        step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    volume = clouds.dst.find("volumes", name="blobstore")[0]
    assert str(caught.value) == (f"volume 'blobstore' ({volume['id']}) went to 'error' "
                                 "instead of 'available'; see the Cinder logs")
    record = caught.value.record
    assert record is not None and record["volume_id"] == volume["id"]
    step.revert(ctx, p, record)
    assert clouds.dst.find("volumes") == [] and clouds.dst.find("images") == []


def test_a_slow_volume_times_out_and_revert_waits_before_deleting(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    clouds.dst.volume_reads_until_available = 100
    clock = FakeClock()
    ctx = clouds.context(clock=clock)
    step, p = ImportVolume(), params(image, timeout="30s")
    with pytest.raises(StepFailed) as caught:
        step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    assert "is still 'downloading' after 30s; raise 'timeout'" in str(caught.value)
    assert clock.sleeps == [5.0] * 6
    # Cinder refuses to delete a volume that is still downloading: revert waits for it.
    clouds.dst.volume_reads_until_available = 10
    assert caught.value.record is not None
    step.revert(ctx, p, caught.value.record)
    assert clouds.dst.find("volumes") == [] and clouds.dst.find("images") == []


def test_an_existing_identical_image_is_reused_and_kept_on_revert(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(b"stemcell" * 1000)
    conn = clouds.sdk(clouds.dst)
    kept = conn.image.create_image(name="blobstore", data=image.read_bytes(),
                                   disk_format="raw", container_format="bare")
    ctx = clouds.context(clock=FakeClock())
    step, p = ImportVolume(), params(image)
    plan = step.plan(p, step.observe(ctx, p))
    assert plan.actions[0].description == f"reuse image 'blobstore' ({kept.id}), same sha512"
    assert plan.actions[0].mutates is False
    result = step.apply(ctx, p, plan)
    assert result.outputs["uploaded_bytes"] == 0
    step.revert(ctx, p, result.record)
    assert [i["id"] for i in clouds.dst.find("images")] == [kept.id]
    assert clouds.dst.find("volumes") == []


def test_keep_image_false_deletes_the_image_once_the_volume_exists(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    ctx = clouds.context(clock=FakeClock())
    step, p = ImportVolume(), params(image, keep_image=False, volume_type="ssd")
    result = step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    assert clouds.dst.find("images") == []
    assert clouds.dst.find("volumes")[0]["volume_type"] == "ssd"
    assert result.record["image_created"] is False


@pytest.mark.parametrize("extra, message", [
    ({"disk_format": "raw"}, ("{file} is a qcow2 image but disk_format says raw; fix "
                             "disk_format or convert the file with qemu-img")),
    ({"size_gb": 2}, ("size_gb 2 is smaller than the image's virtual size (3.00 GiB); use "
                     "at least 3")),
])
def test_bad_input_fails_before_any_change(clouds: Any, extra: dict[str, Any],
                                           message: str) -> None:
    image = qcow2(clouds.tmp / "disk.qcow2", 3 * GIB)
    step, ctx, p = ImportVolume(), clouds.context(), params(image, **extra)
    with pytest.raises(StepFailed) as caught:
        step.plan(p, step.observe(ctx, p))
    assert str(caught.value) == message.format(file=image)
    with pytest.raises(StepFailed):
        step.apply(ctx, p, step.plan(p, None))
    assert clouds.dst.find("images") == [] and clouds.dst.find("volumes") == []


def test_a_name_taken_by_a_broken_volume_is_refused(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    clouds.dst.add("volumes", name="blobstore", size=1, status="error")
    step, ctx, p = ImportVolume(), clouds.context(), params(image)
    with pytest.raises(StepFailed) as caught:
        step.plan(p, step.observe(ctx, p))
    assert "already exists in state 'error'" in str(caught.value)


def test_outputs_and_record_are_plain_json(clouds: Any) -> None:
    image = clouds.tmp / "disk.raw"
    image.write_bytes(bytes(1 << 20))
    ctx = clouds.context(clock=FakeClock())
    step, p = ImportVolume(), params(image)
    result = step.apply(ctx, p, step.plan(p, step.observe(ctx, p)))
    text = json.dumps([result.outputs, result.record])
    assert clouds.dst.password not in text
    assert json.loads(text)[1]["volume_id"] == result.outputs["volume_id"]


def test_a_missing_file_is_planned_as_unknown_unless_the_volume_exists(clouds: Any) -> None:
    missing = clouds.tmp / "not-yet.qcow2"
    step, ctx, p = ImportVolume(), clouds.context(), params(missing)
    plan = step.plan(p, step.observe(ctx, p))
    assert plan.mutation == "undetermined"
    with pytest.raises(StepFailed) as caught:
        step.apply(ctx, p, plan)
    assert str(caught.value) == f"image file {missing} does not exist or is not a file"
    clouds.dst.add("volumes", name="blobstore", size=8)
    assert step.plan(p, step.observe(ctx, p)).mutation == "unchanged"
    assert step.apply(ctx, p, plan).changed is False


def test_estimate_follows_the_file_size(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(bytes(5 << 20))
    assert ImportVolume().estimate(params(image)) == pytest.approx(60.1)
    assert ImportVolume().estimate(params(tmp_path / "absent.raw")) is None
