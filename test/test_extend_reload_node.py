"""A running localizer node picks up a model extended in place with ~/reload."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

try:  # optional: the `ros` marker skips the test (fails it in CI) without rclpy
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import Trigger
except ImportError:
    pass

from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.extend import extend_model
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.ros, pytest.mark.slow]
CONFIG = NetworkConfig(n_neurons=20, places_per_module=4, epochs=2)


def test_running_localizer_reloads_the_extended_model(tmp_path, ros_domain, ros_domains):
    reference, _ = make_route(12, seed=8)
    pixels = preprocess_batch(reference)
    names = [f"p{k:02d}" for k in range(12)]
    model = tmp_path / "m"
    train_network(CONFIG, [pixels[:8]], names[:8], model, workers=1)

    env = ros_domains.env(ros_domain)
    proc = subprocess.Popen([sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args",
                             "-p", f"model_path:={model}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    node = rclpy.create_node("extend_reload_test", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 90
        while not any("ready:" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        client = node.create_client(Trigger, "/vprsnn_localizer/reload")
        assert client.wait_for_service(timeout_sec=30), "no ~/reload service"

        def reload() -> Trigger.Response:
            future = client.call_async(Trigger.Request())
            executor.spin_until_future_complete(future, timeout_sec=60)
            assert future.done(), "no answer from ~/reload"
            return future.result()

        before = reload()
        assert before.success and before.message.endswith(": 8 places"), before.message
        extend_model(model, [pixels[8:]], names[8:])
        after = reload()
        assert after.success and after.message.endswith(": 12 places"), after.message
    finally:
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
