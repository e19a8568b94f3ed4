"""Frame sources: video file, USB/V4L2 camera, RTSP/HTTP stream, GStreamer pipeline, synthetic.

All share one life cycle (`open`, `read`, `close`, context manager); see `base.py`.
`open_source(spec, ...)` in `factory.py` turns a user's source string into a source.
"""
