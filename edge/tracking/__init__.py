"""Point tracking backends behind one contract (`base.PointTracker`)."""

#: Tracker backends this version can build (`edge.pipeline` builds them; the configuration
#: validates against this one list): "lk" = OpenCV Lucas-Kanade on the CPU (`lk.py`), "onnx" =
#: the distilled student through ONNX Runtime (`onnx_student.py`; tracker.onnx of the model
#: directory, else of the shipped default bundle).
TRACKER_BACKENDS: tuple[str, ...] = ("lk", "onnx")
