"""The distilled point tracker ("student") for the edge: model, teachers, windows, training, ONNX export.

    model.py     StudentTracker (torch), its export wrapper and FLOP count
    teachers.py  exact synthetic tracks, LK forward-backward pseudo-labels, saved .npz tracks
    dataset.py   training windows (frame crops + target tracks)
    train.py     distillation loop (checkpoints, resume, validation end-point error)
    onnx.py      tracker.onnx export and bundling into a model directory
    verify.py    torch vs ONNX Runtime parity (FP32 pass/fail, FP16 reported)

The device side is `edge.tracking.onnx_student` (no torch there).
"""
