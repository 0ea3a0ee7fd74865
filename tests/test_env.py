"""Environment fingerprint: versions, device, identity without the hostname."""

import json
import socket

from harness.machine.env import env_key, fingerprint


def test_fingerprint_is_json_safe_and_complete() -> None:
    fp = fingerprint("cpu")
    json.dumps(fp)
    assert {"torch", "transformers", "datasets", "evaluate", "accelerate", "tokenizers"} <= set(fp["packages"])
    assert fp["device"]["type"] == "cpu" and fp["device"]["threads"] >= 1
    assert fp["env_key"].startswith("tf") and fp["device_class"].startswith("cpu-")
    assert set(fp["harness"]) == {"version", "git_commit", "git_dirty"}


def test_identity_does_not_leak_the_hostname() -> None:
    text = json.dumps(fingerprint("cpu"))
    hostname = socket.gethostname()
    assert len(hostname) < 4 or hostname not in text


def test_env_key_changes_with_any_package_version() -> None:
    base = {"transformers": "5.24.0", "torch": "2.13.0+cpu", "datasets": "5.2.0"}
    assert env_key(base) != env_key({**base, "datasets": "5.2.1"})
    assert env_key(base).startswith("tf5.24.0-torch2.13.0-")


def test_an_empty_machine_id_file_falls_back_to_the_hardware(tmp_path) -> None:
    from harness.machine.env import _machine_id

    empty, named = tmp_path / "empty", tmp_path / "named"
    empty.write_text("\n")
    named.write_text("0123456789abcdef\n")
    by_hardware = _machine_id("cpu A", 24.0, files=(str(empty),))
    assert by_hardware != _machine_id("", None, files=(str(empty),))  # the hardware, not the empty text, is hashed
    assert by_hardware == _machine_id("cpu A", 24.0, files=(str(tmp_path / "missing"),))
    assert _machine_id("cpu A", 24.0, files=(str(empty), str(named))) == _machine_id("x", None, files=(str(named),))
