"""The primitive library a device carries: central's cluster centres, so a device labels its
own finished segments with the primitive central would assign them.

`PrimitiveLibrary` is the one owner of the library file (`primitives.npz` in a model
directory, listed in its manifest, so the signed OTA bundle covers it). Central writes it
(`laps-central library export`, `central.library_export`) from a finished clustering run; the
device reads it with the model directory (`edge.model.load_model_directory`) and labels every
finished segment that carries FSQ codes, or, for a "motion" library, a motion summary
(`edge.pipeline`, `label_segment`).

A label is computed exactly as central assigns a run's segments, with the same code:

    codes (S,) --FSQ of model_version--> z_q (S, D)        (edge.tokenizer.FSQ.z_q_from_codes)
    z_q --embedding `method`, EmbeddingConfig, token mean/std--> x (dim,)  (edge.segment_embedding)
        (a "motion" library: x is the segment's motion summary, edge.motion_summary)
    x --z-score with the run's feature mean/std, then L2--> u (dim,)       (`normalize_rows`)
    u --nearest centre (Euclidean on unit rows)--> (cluster, distance)     (`nearest_centre`)

`central.clustering` imports `normalize_rows` and `nearest_centre` from here, so the run's own
assignment and the device's label are one arithmetic. The only difference left is floating
point: central embeds segments in length-grouped batches and the device one at a time, which
may move the last bits of an embedding (benchmarks/primitive_agreement.py measures how often the
labels agree).

The file (schema "laps.primitive-library/1") is one NumPy .npz (read with allow_pickle=False):
    header       0-d unicode array: JSON {"schema", "library_id" (the cluster run id),
                 "model_version", "method", "embedding" (EmbeddingConfig fields), "input_dim",
                 "names" (one per cluster, may be empty), "created"}
    centers      (k, dim) float32, unit-norm rows in the normalised space
    feature_mean (dim,) float64, feature_std (dim,) float64: the run's z-score statistics
    token_mean   (D,) float32, token_std (D,) float32: the Transformer's token standardisation
                 (the model's codebook statistics); absent for the pooling methods
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.errors import ModelError
from edge.model.directory import LIBRARY_NAME
from edge.segment_embedding import METHODS, MOTION_METHODS, EmbeddingConfig, MethodEmbedder, embedding_dim
from edge.segments import PrimitiveLabel, Segment

LIBRARY_SCHEMA = "laps.primitive-library/1"
_FIX = "export it again with `laps-central library export`"


@dataclass(frozen=True, eq=False)
class PrimitiveLibrary:
    """A clustering run's primitives, as a device needs them to label a segment.

    library_id: the cluster run id. model_version: the tokenizer whose z_q it embeds.
    method: the embedding (`edge.segment_embedding.METHODS`); embedding: its EmbeddingConfig.
    input_dim: D, the width of z_q. token_mean/token_std: (D,) float32 token standardisation
    of the Transformer (None for the pooling methods). feature_mean/feature_std: (dim,) float64
    z-score statistics of the run. centers: (k, dim) float32 centres in the normalised space.
    names: one name per cluster, or () when the operator named none.
    """

    library_id: str
    model_version: str
    method: str
    embedding: EmbeddingConfig
    input_dim: int
    feature_mean: np.ndarray
    feature_std: np.ndarray
    centers: np.ndarray
    token_mean: np.ndarray | None = None
    token_std: np.ndarray | None = None
    names: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
                         .replace("+00:00", "Z"))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "centers", np.ascontiguousarray(self.centers, np.float32))
        set_(self, "feature_mean", np.asarray(self.feature_mean, np.float64).reshape(-1))
        set_(self, "feature_std", np.asarray(self.feature_std, np.float64).reshape(-1))
        set_(self, "names", tuple(str(n) for n in self.names))
        for name in ("token_mean", "token_std"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, np.asarray(value, np.float32).reshape(-1))
        if not self.library_id or not self.model_version:
            raise ModelError(f"primitive library has library_id {self.library_id!r} and model_version "
                             f"{self.model_version!r}; both are needed, {_FIX}")
        if self.method not in METHODS:
            raise ModelError(f"primitive library {self.library_id} uses embedding {self.method!r}, which this "
                             f"release does not know ({', '.join(METHODS)}); update the device or {_FIX}")
        dim = embedding_dim(self.method, self.input_dim, self.embedding)
        if self.centers.ndim != 2 or self.centers.shape[0] < 1 or self.centers.shape[1] != dim:
            raise ModelError(f"primitive library {self.library_id} has centres of shape {self.centers.shape}, but "
                             f"{self.method} embeddings of z_q width {self.input_dim} have {dim} values; {_FIX}")
        for name in ("feature_mean", "feature_std"):
            if getattr(self, name).shape != (dim,):
                raise ModelError(f"primitive library {self.library_id}: {name} has shape {getattr(self, name).shape},"
                                 f" expected ({dim},); {_FIX}")
        for name in ("token_mean", "token_std"):
            value = getattr(self, name)
            if value is not None and value.shape != (self.input_dim,):
                raise ModelError(f"primitive library {self.library_id}: {name} has shape {value.shape}, expected "
                                 f"({self.input_dim},); {_FIX}")
        arrays = [self.centers, self.feature_mean, self.feature_std] + [
            a for a in (self.token_mean, self.token_std) if a is not None]
        if not all(np.isfinite(a).all() for a in arrays) or (self.feature_std <= 0).any():
            raise ModelError(f"primitive library {self.library_id} holds non-finite numbers or a zero std; {_FIX}")
        if self.names and len(self.names) != self.k:
            raise ModelError(f"primitive library {self.library_id} names {len(self.names)} clusters but has "
                             f"{self.k}; {_FIX}")

    @property
    def k(self) -> int:
        """The number of primitives (clusters)."""
        return int(self.centers.shape[0])

    # -- labelling -------------------------------------------------------------------------------
    def embed(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Raw embeddings (n, dim) float32 of z_q sequences (each (S_i, D)), as central computes them."""
        return self._embedder.embed(sequences)

    def label_batch(self, sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Nearest primitive of each z_q sequence -> (clusters (n,) int32, distances (n,) float32),
        the distance Euclidean in the normalised space (0 to 2), as central stores it."""
        if len(sequences) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        # One BLAS thread: a segment's matrices are small (S x 256), so more threads cost more in
        # hand-offs than they save (7.3 -> 2.8 ms for 20 tokens on 2 busy cores), and on a device
        # they would take cores from the tracker and the tokenizer. The results are bit-identical.
        with _blas_controller().limit(limits=1, user_api="blas"):
            x = normalize_rows(self.embed(sequences), self.feature_mean, self.feature_std)
            return nearest_centre(x, self.centers)

    def label(self, z_q: np.ndarray) -> tuple[int, float]:
        """(cluster id, distance) of one segment's z_q sequence (S, D), S >= 1."""
        clusters, distances = self.label_batch([np.asarray(z_q, np.float32)])
        return int(clusters[0]), float(distances[0])

    def label_codes(self, codes: Sequence[int] | np.ndarray, fsq) -> PrimitiveLabel | None:
        """The label of a segment's FSQ codes through `fsq` (an `edge.tokenizer.FSQ` of this
        library's model: the device's own); None for a segment without codes."""
        c = np.asarray(codes, dtype=np.int64)
        if c.size == 0:
            return None
        cluster, distance = self.label(fsq.z_q_from_codes(c))
        return PrimitiveLabel(self.library_id, cluster, distance)

    def label_motion(self, motion: str | None) -> PrimitiveLabel | None:
        """The label of a segment's encoded motion summary (`Segment.motion`) for a motion
        library; None for a segment without one."""
        if motion is None:
            return None
        from edge.motion_summary import decode_motion

        cluster, distance = self.label(decode_motion(motion)[None, :])
        return PrimitiveLabel(self.library_id, cluster, distance)

    def label_segment(self, segment: Segment, fsq=None) -> PrimitiveLabel | None:
        """The label of a finished segment: from its motion summary for a motion library, else
        from its codes through `fsq` (the device's `edge.tokenizer.FSQ`); None when the segment
        lacks what the library embeds."""
        if self.method in MOTION_METHODS:
            return self.label_motion(segment.motion)
        return self.label_codes(segment.codes, fsq)

    def check_model(self, model_version: str, latent_dim: int) -> None:
        """`ModelError` unless this library was made for `model_version` with z_q width `latent_dim`."""
        if self.model_version != model_version:
            raise ModelError(f"primitive library {self.library_id} was made for model {self.model_version!r}, but the "
                             f"model directory holds {model_version!r}; export the library from a clustering run "
                             f"of {model_version!r}")
        if self.input_dim != int(latent_dim):
            raise ModelError(f"primitive library {self.library_id} embeds z_q of width {self.input_dim}, but model "
                             f"{model_version!r} produces width {latent_dim}; {_FIX}")

    @cached_property
    def _embedder(self) -> MethodEmbedder:
        # Built once: the Transformer's seeded weights are the same every time, and a device labels many segments.
        stats = None if self.token_mean is None else (self.token_mean, self.token_std)
        return MethodEmbedder(self.method, self.input_dim, self.embedding, stats)

    # -- the file ----------------------------------------------------------------------------------
    def header(self) -> dict:
        """The JSON header of the file (everything but the arrays)."""
        return {"schema": LIBRARY_SCHEMA, "library_id": self.library_id, "model_version": self.model_version,
                "method": self.method, "embedding": asdict(self.embedding), "input_dim": int(self.input_dim),
                "k": self.k, "names": list(self.names), "created": self.created}

    def write(self, path: str | os.PathLike) -> Path:
        """Write the library to `path` (a model directory -> `<dir>/primitives.npz`, or a file
        path), atomically. Returns the file's path. Listing it in the directory's manifest is
        the caller's step (`central.library_export` does it)."""
        target = Path(path)
        if target.is_dir():
            target = target / LIBRARY_NAME
        arrays = {"header": np.array(json.dumps(self.header(), sort_keys=True)), "centers": self.centers,
                  "feature_mean": self.feature_mean, "feature_std": self.feature_std}
        if self.token_mean is not None and self.token_std is not None:
            arrays.update(token_mean=self.token_mean, token_std=self.token_std)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, target)
        return target

    @classmethod
    def read(cls, path: str | os.PathLike) -> "PrimitiveLibrary":
        """Read and check a library file (a model directory -> its primitives.npz); a missing,
        damaged or inconsistent file is a one-line `ModelError`."""
        source = Path(path)
        if source.is_dir():
            source = source / LIBRARY_NAME
        try:
            with np.load(source, allow_pickle=False) as data:
                header = json.loads(str(data["header"][()]))
                arrays = {name: np.array(data[name]) for name in data.files if name != "header"}
        except FileNotFoundError:
            raise ModelError(f"primitive library {source} does not exist; {_FIX}") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise ModelError(f"primitive library {source} is damaged or not a library "
                             f"({type(err).__name__}: {str(err)[:120]}); {_FIX}") from None
        if not isinstance(header, dict) or header.get("schema") != LIBRARY_SCHEMA:
            found = header.get("schema") if isinstance(header, dict) else type(header).__name__
            raise ModelError(f"primitive library {source} has schema {found!r}, expected {LIBRARY_SCHEMA!r}; {_FIX}")
        try:
            embedding = EmbeddingConfig(**header["embedding"])
            library = cls(
                library_id=str(header["library_id"]), model_version=str(header["model_version"]),
                method=str(header["method"]), embedding=embedding, input_dim=int(header["input_dim"]),
                feature_mean=arrays["feature_mean"], feature_std=arrays["feature_std"], centers=arrays["centers"],
                token_mean=arrays.get("token_mean"), token_std=arrays.get("token_std"),
                names=tuple(header.get("names") or ()), created=str(header.get("created", "")),
            )
        except ModelError as err:
            raise ModelError(f"{source}: {err}") from None
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"primitive library {source} lacks or garbles a field ({type(err).__name__}: "
                             f"{str(err)[:120]}); {_FIX}") from None
        if library.method == "transformer" and library.token_mean is None:
            raise ModelError(f"primitive library {source} uses the Transformer but carries no token statistics; {_FIX}")
        return library


@lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once (a per-call lookup costs
    0.3 ms; the controller's `limit` 10 us)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


# -- the shared arithmetic (central.clustering imports these) ------------------------------------------
def normalize_rows(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z-score with (mean, std), then L2-normalise each row -> float32 (rows of norm 1; an
    all-zero row stays zero)."""
    z = np.asarray(x, np.float32) - mean.astype(np.float32)  # float32 throughout: n x dim is the big array
    z /= std.astype(np.float32)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    np.divide(z, norms, out=z, where=norms > 0)
    return z


def nearest_centre(rows: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre (Euclidean) of each row -> (labels (n,) int32, distances (n,) float32).
    rows: (n, dim), centers: (k, dim), both float32 in the normalised space."""
    d2 = (np.einsum("ij,ij->i", rows, rows)[:, None] - 2.0 * rows @ centers.T
          + np.einsum("ij,ij->i", centers, centers)[None, :])
    lab = np.argmin(d2, axis=1).astype(np.int32)
    # The distance itself from the difference, not from d2: the expansion cancels to a rounding
    # error (~1e-7) for a row on its centre, and its square root (~3e-4) would then depend on how
    # the rows were batched, so central and a device would disagree in the fourth decimal.
    diff = np.asarray(rows, np.float32) - centers[lab]
    dist = np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float32)
    return lab, dist
