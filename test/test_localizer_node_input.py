"""Integration tests of the ``localizer`` ROS 2 node (``vprsnn_localizer``): input it must
survive.

* bad raw images (wrong encodings, steps and sizes) and corrupt compressed ones are
  rejected and counted in ``/diagnostics``; a 1x1 and a 6000x4000 frame are processed;
* an unusable model at start (missing, empty, garbage YAML, a truncated module): exit
  code 2 and one error line naming it;
* a 1 kHz flood: frames are dropped, none fails, memory stays bounded, the node still
  answers afterwards.

Like ``test_localizer_node.py`` (which describes the set-up): the node in a process of its
own on a ROS domain of its own, talked to over real DDS (``ros_harness``), every wait with
a deadline and no fixed sleep; the model is the session's ``model16``.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ros_harness import DIAG_TIMEOUT, IMAGE_TOPIC, NODE, RosClient, array_image, raw_image, reliable_qos, settled

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image
except ImportError:
    pass

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("localhost_only")]

COMPRESSED_TOPIC = f"{IMAGE_TOPIC}/compressed"  # image_transport's name for the compressed input


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

def bad_raw_images() -> dict[str, Image]:
    f32 = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    return {
        "32FC1": raw_image("32FC1", 8, 8, 32, f32.tobytes()),
        "yuv422": raw_image("yuv422", 8, 8, 16, bytes(128)),
        "empty encoding": raw_image("", 8, 8, 8, bytes(64)),
        "step < width": raw_image("mono8", 8, 8, 4, bytes(32)),
        "bgr8 step < 3*width": raw_image("bgr8", 8, 8, 8, bytes(64)),
        "data shorter than step*height": raw_image("mono8", 8, 8, 8, bytes(63)),
        "data longer than step*height": raw_image("mono8", 8, 8, 8, bytes(65)),
        "padded step, unpadded data": raw_image("mono8", 8, 8, 10, bytes(64)),
        "huge claimed size, tiny data": raw_image("mono8", 4000, 6000, 6000, bytes(10)),
        "empty data": raw_image("mono8", 8, 8, 8, b""),
        "0x0 image": raw_image("mono8", 0, 0, 0, b""),
    }


def send_settled(client: RosClient, pub, msg, expect_received: int,
                 timeout: float = DIAG_TIMEOUT) -> dict | None:
    """Publish one frame and wait until diagnostics show it received and accounted for."""
    after = time.monotonic()
    pub.publish(msg)
    return client.wait_diag(lambda d: int(d["frames_received"]) >= expect_received and settled(d),
                            after=after, timeout=timeout)


@pytest.mark.slow
def test_bad_images_are_rejected_and_extreme_sizes_processed(start_node, client_factory, route16,
                                                             model16, ros_domains):
    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "diagnostics_period": "0.25"})
    client = client_factory(domain)
    pub = client.image_publisher(node)

    bad = bad_raw_images()
    for k, (name, msg) in enumerate(bad.items(), start=1):
        d = send_settled(client, pub, msg, k)
        assert d is not None, (f"bad frame {name!r}: not accounted for in diagnostics "
                               f"(last {client.latest_diag()}); alive {node.alive()}")
        assert int(d["frames_rejected"]) == k, f"bad frame {name!r} not counted as rejected: {d}"
        assert node.alive(), f"node died on {name!r}:\n{node.output()}"
    assert not client.estimates, "a bad frame produced an estimate"

    est = client.send_and_wait_estimate(pub, array_image(reference[2], "bgr8", (2, 0)))
    assert est is not None, f"a good frame after the bad ones got no estimate:\n{node.output()}"
    tiny = client.send_and_wait_estimate(pub, array_image(np.full((1, 1), 90, np.uint8), "mono8"))
    assert tiny is not None, f"1x1 mono8 frame not processed; last diagnostics {client.latest_diag()}"
    big = np.random.default_rng(1).integers(0, 256, (4000, 6000), dtype=np.uint8)
    large = client.send_and_wait_estimate(pub, array_image(big, "mono8", (7, 7)), timeout=90.0)
    assert large is not None, (f"6000x4000 mono8 frame not processed; last diagnostics "
                               f"{client.latest_diag()}")
    assert (large.header.stamp.sec, large.header.stamp.nanosec) == (7, 7)

    d = client.wait_diag(lambda d: int(d["frames_processed"]) >= 3 and settled(d),
                         after=time.monotonic())
    print(f"\ndiagnostics after bad input: {d}")
    assert d is not None, f"last diagnostics {client.latest_diag()}"
    assert int(d["frames_rejected"]) == len(bad)
    assert int(d["frames_processed"]) == 3
    assert int(d["frames_failed"]) == 0 and int(d["frames_dropped"]) == 0
    assert int(d["frames_received"]) == len(bad) + 3
    assert node.alive()
    assert "Traceback" not in node.output(), node.output()


@pytest.mark.slow
def test_corrupt_compressed_image_is_rejected(start_node, client_factory, route16, model16, ros_domains):
    import cv2

    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "use_compressed": "true",
                                        "diagnostics_period": "0.25"})
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    cpub = client.node.create_publisher(CompressedImage, COMPRESSED_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    # image:=/test_cam/image must move the compressed input to /test_cam/image/compressed
    # (image_transport convention: "<base topic>/compressed").
    if not client.spin_until(lambda: cpub.get_subscription_count() >= 1, 10.0):
        pytest.fail(f"nobody subscribes to {COMPRESSED_TOPIC}; the node subscribes to "
                    f"{client.node.get_subscriber_names_and_types_by_node(NODE, '/')}")

    corrupt = {
        "jpeg garbage": CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),
        "png garbage": CompressedImage(format="png", data=b"\x89PNG\r\n\x1a\n" + b"nonsense" * 50),
        "empty": CompressedImage(format="jpeg", data=b""),
    }
    for k, (name, msg) in enumerate(corrupt.items(), start=1):
        d = send_settled(client, cpub, msg, k)
        assert d is not None, f"{name!r}: not accounted for; last {client.latest_diag()}"
        assert int(d["frames_rejected"]) == k, f"{name!r} not counted as rejected: {d}"
        assert node.alive(), node.output()
    assert not client.estimates

    ok, png = cv2.imencode(".png", reference[3])
    assert ok
    est = client.send_and_wait_estimate(cpub, CompressedImage(format="png", data=png.tobytes()))
    assert est is not None, "a valid compressed frame got no estimate"
    est = client.send_and_wait_estimate(pub, array_image(reference[4], "bgr8"))
    assert est is not None, "a good raw frame after the corrupt ones got no estimate"
    d = client.wait_diag(lambda d: int(d["frames_processed"]) >= 2 and settled(d),
                         after=time.monotonic())
    print(f"\ndiagnostics after corrupt compressed input: {d}")
    assert d is not None
    assert int(d["frames_rejected"]) == len(corrupt)
    assert int(d["frames_processed"]) == 2 and int(d["frames_failed"]) == 0


# --------------------------------------------------------------------------
# unusable model at start
# --------------------------------------------------------------------------

def make_bad_model(kind: str, model16: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"model_{kind.replace(' ', '_')}"
    if kind == "missing":
        return path
    shutil.copytree(model16, path)
    if kind == "garbage yaml":
        (path / "model.yaml").write_text("{{{: this is [not yaml\n")
    elif kind == "truncated module":
        module = sorted(path.glob("module_*.npz"))[1]
        data = module.read_bytes()
        module.write_bytes(data[: len(data) // 2])
    elif kind == "empty dir":
        shutil.rmtree(path)
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["missing", pytest.param("empty dir", marks=pytest.mark.slow),
                                  pytest.param("garbage yaml", marks=pytest.mark.slow), "truncated module"])
def test_unusable_model_at_start_exits_with_one_error(start_node, model16, tmp_path, kind, ros_domains):
    bad = make_bad_model(kind, model16, tmp_path)
    node = start_node(ros_domains.new(), bad)
    code = node.wait_exit(timeout=20.0)  # once exited, its output is complete
    out = node.output()
    print(f"\n[{kind}] exit code {code}; output:\n{out}")
    assert code is not None, f"still running 20 s after start with a {kind} model:\n{out}"
    assert code == 2, f"exit code {code}: the node documents 2 for an unusable model\n{out}"
    assert "Traceback" not in out, out
    error_lines = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, f"expected exactly one error line, got {error_lines}"
    assert str(bad) in error_lines[0], f"the error line does not name {bad}: {error_lines[0]}"


# --------------------------------------------------------------------------
# flood
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_flood_drops_frames_and_keeps_memory_bounded(start_node, client_factory, model16, ros_domains):
    """A 1 kHz flood: frames are dropped, none fails, memory stays bounded, and the node still
    answers afterwards. (How fast it answers is bench/node_latency.py's question, not a test's.)"""
    domain = ros_domains.new()
    node = start_node(domain, model16)  # default: sensor-data (best-effort) QoS
    client = client_factory(domain)
    pub = client.image_publisher(node, qos_profile_sensor_data)

    rss_start = node.rss_kb()
    assert rss_start
    peak = [rss_start]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            rss = node.rss_kb()
            if rss is not None:
                peak[0] = max(peak[0], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rng = np.random.default_rng(2)
    frames = [array_image(rng.integers(0, 256, (48, 64), dtype=np.uint8), "mono8", (k, 0))
              for k in range(50)]
    published = 0
    period, duration = 1e-3, 10.0
    started = time.monotonic()
    next_tick = started
    try:
        while time.monotonic() - started < duration:
            pub.publish(frames[published % len(frames)])
            published += 1
            next_tick += period
            pause = next_tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -0.1:  # fell behind (busy machine): do not burst to catch up
                next_tick = time.monotonic()
    finally:
        flood_end = time.monotonic()
    d = client.wait_diag(lambda d: int(d["frames_received"]) > 0 and settled(d), after=flood_end,
                         timeout=20.0)
    sampling.set()
    sampler.join(timeout=2.0)
    alive = node.alive()
    print(f"\nflood: published {published} frames in {flood_end - started:.1f} s "
          f"({published / (flood_end - started):.0f} Hz); RSS start {rss_start / 1024:.1f} MB, "
          f"peak {peak[0] / 1024:.1f} MB (+{(peak[0] - rss_start) / 1024:.1f} MB)")
    if d is not None:
        print(f"flood: received {d['frames_received']} processed {d['frames_processed']} "
              f"dropped {d['frames_dropped']} rejected {d['frames_rejected']} "
              f"failed {d['frames_failed']}; latency mean {d['latency_mean_ms']} ms "
              f"p99 {d['latency_p99_ms']} ms; input rate {d['input_rate_hz']} Hz")
    assert alive, f"node died during the flood:\n{node.output()}"
    assert d is not None, f"no settled diagnostics after the flood; last {client.latest_diag()}"
    assert peak[0] < rss_start + 200 * 1024, "resident memory grew by more than 200 MB"
    assert int(d["frames_received"]) > 0
    assert int(d["frames_dropped"]) > 0, "a 1 kHz flood dropped no frame?"
    assert int(d["frames_processed"]) > 0
    assert int(d["frames_rejected"]) == 0 and int(d["frames_failed"]) == 0
    assert int(d["frames_received"]) == int(d["frames_processed"]) + int(d["frames_dropped"])
    # Still serving after the flood (best effort: allow a few attempts).
    got = False
    for k in range(5):
        probe = array_image(np.full((48, 64), 40 * k, np.uint8), "mono8", (100_000 + k, 1))
        if client.send_and_wait_estimate(pub, probe, timeout=5.0, match_stamp=True) is not None:
            got = True
            break
    assert got, f"no estimate after the flood:\n{node.output()}"

