"""Regions of interest: polygons that restrict tracking to the workstation (as DeepStream's
`nvdsanalytics` ROI does).

A region is one or more polygons in NORMALISED image coordinates: x in [0, 1] from the left
edge to the right edge, y in [0, 1] from the top edge to the bottom edge. Normalised, so one
region fits a camera's full-resolution frame, the model's input size (the pipeline resizes
frames) and the picture `laps-edge roi` draws, without being re-drawn after a resize. A point
is inside the region when it lies inside (or on the edge of) at least one polygon.

The text form, shared by `laps-edge run --roi`, `laps-edge roi --roi` and the device
configuration's `[roi] polygons`, is one polygon per string: at least three "x,y" vertices
separated by spaces, e.g. "0,0.15 1,0.15 1,1 0,1". On the command line several polygons are
separated by ';'.

How trackers use it (`PointTracker` contract, edge.tracking.base): the model expects its
grid*grid points in grid order, so a region keeps N and the order; the grid points outside it
(`RegionOfInterest.mask`) are never tracked and are reported on every step at their grid
position, visible False, velocity 0 - exactly what the tokenizer and the velocity energy read
as "no measurement" - so motion outside the region (a conveyor, people passing) cannot start a
segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import ConfigError

#: the fix every message about a bad polygon ends with
ROI_SYNTAX = ('at least 3 "x,y" vertices in normalised image coordinates (0..1, y down) separated by '
              'spaces, e.g. "0,0.15 1,0.15 1,1 0,1"')


@dataclass(frozen=True)
class RegionOfInterest:
    """One or more polygons, each a tuple of (x, y) vertices in normalised [0, 1] coordinates.

    Checked on construction: at least one polygon, each with >= 3 finite vertices in [0, 1] and
    a non-zero area; otherwise a one-line `ConfigError` naming the polygon.
    """

    polygons: tuple[tuple[tuple[float, float], ...], ...]

    def __post_init__(self) -> None:
        if not self.polygons:
            raise ConfigError(f"a region of interest needs at least one polygon: {ROI_SYNTAX}")
        for k, poly in enumerate(self.polygons):
            check_polygon(poly, f"polygon {k + 1}")

    @classmethod
    def parse(cls, texts: "str | list[str] | tuple[str, ...]") -> "RegionOfInterest":
        """From the text form: one string per polygon (a single string may hold several polygons
        separated by ';'). Raises a one-line `ConfigError` naming the polygon and the fix."""
        items = [texts] if isinstance(texts, str) else list(texts)
        parts = [p for text in items for p in str(text).split(";")]
        return cls(tuple(parse_polygon(p, f"polygon {k + 1}") for k, p in enumerate(parts)))

    def to_texts(self) -> list[str]:
        """The text form, one string per polygon (what `parse` reads back)."""
        return [" ".join(f"{x:g},{y:g}" for x, y in poly) for poly in self.polygons]

    def pixel_polygons(self, width: int, height: int) -> list[np.ndarray]:
        """Each polygon as (V, 2) float32 pixel coordinates of a `width` x `height` image, in the
        tracking convention (edge.tracking.base: pixel centres, 0..width-1 and 0..height-1)."""
        scale = np.array([width - 1, height - 1], np.float32)
        return [np.asarray(poly, np.float32) * scale for poly in self.polygons]

    def mask(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N,) bool: which of `points` ((N, 2) float (x, y) pixels of a `width` x `height` image)
        lie inside or on the edge of at least one polygon."""
        pts = np.asarray(points, np.float32).reshape(-1, 2)
        inside = np.zeros(len(pts), bool)
        for poly in self.pixel_polygons(width, height):
            contour = poly.reshape(-1, 1, 2)
            inside |= np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
                                for x, y in pts], bool)
        return inside


def parse_polygon(text: str, name: str = "polygon") -> tuple[tuple[float, float], ...]:
    """One polygon from "x,y x,y x,y ..." (normalised); a one-line `ConfigError` when malformed."""
    poly, problem = polygon_problem(text)
    if problem:
        raise ConfigError(f"region of interest {name} {str(text).strip()!r}: {problem}; give {ROI_SYNTAX}")
    return poly


def polygon_problem(text: str) -> tuple[tuple[tuple[float, float], ...], str]:
    """(the polygon, "") for a good "x,y x,y x,y ..." text, else ((), what is wrong with it)."""
    vertices = []
    for token in str(text).split():
        xy = token.split(",")
        try:
            if len(xy) != 2:
                raise ValueError
            vertices.append((float(xy[0]), float(xy[1])))
        except ValueError:
            return (), f'vertex {token!r} is not "x,y"'
    poly = tuple(vertices)
    problem = _shape_problem(poly)
    return (poly, "") if not problem else ((), problem)


def check_polygon(poly: tuple[tuple[float, float], ...], name: str) -> None:
    """Refuse a polygon with < 3 vertices, a coordinate outside [0, 1] (or not finite), or no area."""
    problem = _shape_problem(poly)
    if problem:
        shown = " ".join(f"{x:g},{y:g}" for x, y in poly)
        raise ConfigError(f"region of interest {name} {shown!r}: {problem}; give {ROI_SYNTAX}")


def _shape_problem(poly: tuple[tuple[float, float], ...]) -> str:
    if len(poly) < 3:
        return f"it has {len(poly)} vertices"
    for x, y in poly:
        if not (math.isfinite(x) and math.isfinite(y) and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return (f"vertex {x:g},{y:g} lies outside the image (coordinates are fractions of the width and "
                    "height, not pixels)")
    area = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1])))
    if area <= 1e-9:
        return "it encloses no area (its vertices lie on one line)"
    return ""
