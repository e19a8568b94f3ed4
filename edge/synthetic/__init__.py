"""The synthetic workstation: a generated overhead view of a workbench where one or two hands
perform assembly cycles of action primitives, with switchable nuisances and exact ground truth
(per-frame labels, primitive segments, and the exact 2-D trajectories of surface points).

    from edge.synthetic import SyntheticWorkstation, Nuisances, write_video
    ws = SyntheticWorkstation(seed=7, minutes=2, nuisances=Nuisances.all_on())
    frame = ws.render(0); gt = ws.ground_truth; pos, vis = ws.trajectories(points, 0, frames)

Tests, benchmarks and users all call these same generators, so a figure in a test or a benchmark
can be reproduced by anyone with the same call.
Seed policy (project-wide): training 100-199, validation 500-599, held-out benchmark 900-999.
"""

#: Bump whenever a change alters rendered pixels, motion or labels for an existing seed: track
#: caches and anything else derived from a synthetic spec are keyed on it.
GENERATOR_VERSION = "2026.11.24-1"

from edge.synthetic.groundtruth import GroundTruth, GroundTruthError, load_ground_truth
from edge.synthetic.nuisances import NUISANCE_NAMES, Nuisances
from edge.synthetic.script import LABEL_NAMES, PRIMITIVE_MOTION, PRIMITIVES
from edge.synthetic.video import SyntheticOutputError, write_tracks, write_video
from edge.synthetic.workstation import SyntheticWorkstation

__all__ = [
    "GENERATOR_VERSION",
    "GroundTruth", "GroundTruthError", "LABEL_NAMES", "NUISANCE_NAMES", "Nuisances", "PRIMITIVES",
    "PRIMITIVE_MOTION", "SyntheticOutputError", "SyntheticWorkstation", "load_ground_truth", "write_tracks",
    "write_video",
]
