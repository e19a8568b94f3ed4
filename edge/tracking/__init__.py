"""Point tracking backends behind one contract (`base.PointTracker`)."""

#: Tracker backends this version can build (`edge.pipeline` builds them; the configuration
#: validates against this one list). The distilled ONNX student joins here when it ships.
TRACKER_BACKENDS: tuple[str, ...] = ("lk",)
