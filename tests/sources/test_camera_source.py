"""CameraSource: every way a camera can be unavailable gives one line naming the device and fix.

There is no camera on the build machine: absent devices, device nodes with no driver behind
them, non-camera files and permissions are tested for real; capturing needs a camera and skips.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge.errors import CameraUnavailableError, ConfigError
from edge.sources.camera import CameraSource, camera_device_path, errno_message


def test_an_index_names_the_matching_video_node():
    assert camera_device_path(0) == "/dev/video0"
    assert camera_device_path("2") == "/dev/video2"
    assert camera_device_path("/dev/v4l/by-id/usb-cam-video-index0") == "/dev/v4l/by-id/usb-cam-video-index0"


def test_a_negative_index_is_refused():
    with pytest.raises(CameraUnavailableError, match="camera index -1 is negative"):
        CameraSource(-1)


def test_absent_camera_names_the_device_and_how_to_list_cameras():
    src = CameraSource(57)
    with pytest.raises(CameraUnavailableError) as err:
        src.open()
    message = str(err.value)
    assert "/dev/video57 is not present" in message
    assert "ls /dev/video*" in message and "'video' group" in message
    assert "\n" not in message


def test_regular_file_is_not_a_camera(tmp_path):
    path = tmp_path / "video0"
    path.write_bytes(b"not a camera")
    with pytest.raises(CameraUnavailableError, match="is a regular file, not a video device"):
        CameraSource(str(path)).open()


def test_character_device_without_v4l2_is_not_a_camera():
    with pytest.raises(CameraUnavailableError, match=r"/dev/null is not a V4L2 video device \(ENOTTY"):
        CameraSource("/dev/null").open()


def test_video_node_without_a_driver_behind_it_is_reported_absent(tmp_path):
    # A /dev/videoN node left behind after the camera was unplugged: major 81 is video4linux,
    # opening it fails with ENXIO/ENODEV because no driver answers for that minor.
    node = tmp_path / "video63"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(81, 63))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD, which this test run lacks")
    with pytest.raises(CameraUnavailableError, match=r"video63 is not present \((ENXIO|ENODEV)"):
        CameraSource(str(node)).open()


def test_permission_denied_suggests_the_video_group():
    code = (
        "import sys\n"
        "from edge.sources.camera import CameraSource\n"
        "from edge.errors import CameraUnavailableError\n"
        "try:\n    CameraSource(sys.argv[1]).open()\n"
        "except CameraUnavailableError as err:\n    print(err)\n"
    )
    with tempfile.TemporaryDirectory(prefix="laps-cam-") as tmp:
        os.chmod(tmp, 0o755)
        node = Path(tmp) / "video0"
        node.write_bytes(b"")
        node.chmod(0o000)
        command = [sys.executable, "-c", code, str(node)]
        # root ignores file modes through CAP_DAC_OVERRIDE: the child runs without it
        preexec = _drop_dac_override if os.geteuid() == 0 else None
        run = subprocess.run(command, capture_output=True, text=True, cwd="/", timeout=60,
                             preexec_fn=preexec)
    if "cannot drop capabilities" in run.stderr:
        pytest.skip("this root process cannot drop CAP_DAC_OVERRIDE (no CAP_SETPCAP)")
    assert "video0: permission denied (EACCES)" in run.stdout, run.stderr
    assert "usermod -aG video" in run.stdout and "--device" in run.stdout


def _drop_dac_override() -> None:
    """In the child before exec: remove the capabilities that let root ignore file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            os.write(2, b"cannot drop capabilities")
            os._exit(3)


def test_busy_device_message_says_how_to_find_the_holder():
    message = errno_message("/dev/video0", errno.EBUSY)
    assert message.startswith("camera /dev/video0 is busy (EBUSY)")
    assert "fuser -v /dev/video0" in message


def test_an_unusual_errno_still_names_device_and_error():
    message = errno_message("/dev/video3", errno.EIO)
    assert "/dev/video3" in message and "EIO" in message


@pytest.mark.skipif(not glob.glob("/dev/video*"), reason="no V4L2 camera (/dev/video*) on this machine")
def test_a_real_camera_delivers_frames():
    for device in sorted(glob.glob("/dev/video*")):
        try:
            with CameraSource(device, width=320, height=240) as src:
                frames = [src.read() for _ in range(3)]
        except CameraUnavailableError:
            continue  # a metadata node, try the next
        assert all(f.image.shape[2] == 3 for f in frames)
        assert frames[0].timestamp_s == 0.0 < frames[1].timestamp_s < frames[2].timestamp_s
        return
    pytest.skip("no /dev/video* node could capture")


def test_a_pixel_format_must_be_four_characters():
    with pytest.raises(ConfigError, match="camera pixel format 'MJPEG' is not a four-character code"):
        CameraSource(0, fourcc="MJPEG")
