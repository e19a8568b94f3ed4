"""The device runtime never imports torch (the device has none)."""

import subprocess
import sys


def test_edge_tokenizer_model_and_inference_do_not_import_torch(model_dir):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import edge.tokenizer, edge.model, edge.inference\n"
        f"rt = edge.tokenizer.TokenizerRuntime({str(model_dir.path)!r}, providers='cpu')\n"
        "rt.step(np.zeros((rt.metadata.n_points, 2), np.float32), np.ones(rt.metadata.n_points, bool))\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'export')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
