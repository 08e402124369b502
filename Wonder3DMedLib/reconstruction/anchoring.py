"""Absolute depth for integrated height maps: pieces, silhouette contours, cross-view agreement.

Data form: per-view height maps ``(S, S)`` in pixels (the ``w`` of each view's pixel frame,
NaN outside the mask) and piece labels ``(S, S)`` int (−1 = unassigned), on a
:class:`~Wonder3DMedLib.reconstruction.view_stack.ViewStack`.

Normal integration knows each connected piece of a view only up to a constant. Three
pieces of evidence fix the constants, all from the other views' absolute *lateral*
positions (orthographic images are metric across the image):

* **Contours.** Where a pixel's normal is perpendicular to another view's direction, the
  surface point lies on that view's contour generator; if that is on its silhouette, the
  point projects onto the silhouette's boundary in the same image row (all cameras are
  upright). Each such crossing proposes the heights that put it on a boundary of the right
  side — unless its own piece reaches further out in that row of the other view
  (:meth:`Crossings.beyond_in_row`): then it is an inner fold, inside the silhouette, and
  putting it on the boundary would move the piece towards the camera.
* **Agreement.** Moving a piece along its viewing direction moves it across the other views;
  at the right offset its points land on the other views' (already anchored) surfaces.
* **Hull.** A piece may not leave the visual hull; without other evidence it is placed as
  close to its camera as the hull allows (conservative: it then carves nothing wrong).

:func:`free_space_clamp` finally lifts any surface that lies behind points another view
sees squarely (a surface may never hide what another camera sees), so a wrongly anchored
piece cannot carve away the object (a point that several views see free space at is the
likelier one to be wrong, and may be kept from lifting); :func:`drop_contradicted` unplaces a
piece the clamp had to lift in many places, or that most of the other views' points reaching
it stick out of (:func:`landings_on`), since between the lifted pixels it would still carve
too deep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import binary_closing, gaussian_filter1d
from scipy.sparse.csgraph import connected_components
from skimage.filters import apply_hysteresis_threshold

from Wonder3DMedLib.reconstruction._images import bilinear, extend_nearest
from Wonder3DMedLib.reconstruction.cameras import wonder3d_cameras
from Wonder3DMedLib.reconstruction.integration import Integration, PointConstraints
from Wonder3DMedLib.reconstruction.view_stack import ViewStack

__all__ = [
    "Crossings",
    "segment_pieces",
    "compact_labels",
    "contour_crossings",
    "piece_offsets",
    "apply_offsets",
    "contour_constraints",
    "free_space_clamp",
    "drop_contradicted",
    "Landings",
    "landings_on",
    "pieces_flagged",
    "outside_hull",
]

_MIN_LATERAL = 0.3  # |d col_l / d w_k| below this a view's contours say little about view k's depth
_STEP = 0.5  # offset resolution of the votes (pixels)
_BEYOND_PX = 0.25  # a crossing whose own piece reaches further out in the other view is not on its silhouette
_CONFIRMED = 0.5  # agreement (summed fractions of the other views) that outweighs one dissenting view


def segment_pieces(
    integration: Integration,
    facing: np.ndarray,
    *,
    grazing: float,
    cut: float,
    min_pixels: int,
    close_gaps_px: int = 0,
    limb_grazing: float | None = None,
    limb_continuation: float = 0.0,
    edge_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Split a view into pieces that integration ties together reliably.

    Pixels seen at a grazing angle (``facing < grazing``) and edges whose bilateral
    weight fell below ``cut`` separate pieces; pieces smaller than ``min_pixels`` are left
    unassigned. A grazing band (the occluding contour of a surface in front of another)
    interrupted by a few pixels above the threshold — noisy normals scatter such pixels —
    would let integration join the two surfaces across their depth step; gaps of up to
    ``2 · close_gaps_px`` pixels are closed (morphological closing of the grazing pixels
    with a ``(2 · close_gaps_px + 1)²`` square).
    Pixels facing less than ``limb_grazing`` (when given, above ``grazing``) separate pieces
    too, without closing: the last pixel of a tightly curved limb often faces its camera a
    little more than ``grazing``, and such pixels extend the bands along the limb. With
    ``limb_continuation``, a band of such pixels goes on through the pixels connected to it
    that face the camera less than ``limb_grazing + limb_continuation`` (hysteresis, as in
    Canny's edge linking): noisy normals lift single pixels of a limb a little above
    ``limb_grazing`` and would open a gap, while the pixels they push below it elsewhere
    touch no band and cut nothing more. ``edge_weights`` replaces the integration's own
    bilateral weights (``integration.edge_weights()``), e.g. the smaller of two integrations'.

    Returns
    -------
    labels : (S, S) int64 — piece of each pixel, −1 outside the mask or unassigned
    count : int
    """
    graph = integration.graph
    grazing_pixels = graph.mask & (facing < grazing)
    if close_gaps_px > 0:
        grazing_pixels = graph.mask & binary_closing(grazing_pixels, np.ones((3, 3), bool), iterations=close_gaps_px)
    if limb_grazing is not None:
        turned_away = -np.where(graph.mask, facing, np.inf)
        grazing_pixels |= apply_hysteresis_threshold(turned_away, -(limb_grazing + limb_continuation), -limb_grazing)
    good = ~grazing_pixels[graph.mask]
    weights = integration.edge_weights() if edge_weights is None else edge_weights
    keep = (weights >= cut) & good[graph.edge_a] & good[graph.edge_b]
    n = graph.size
    adjacency = sp.csr_matrix((np.ones(int(keep.sum())), (graph.edge_a[keep], graph.edge_b[keep])), shape=(n, n))
    _, components = connected_components(adjacency, directed=False)
    labels = np.full(graph.mask.shape, -1, dtype=np.int64)
    labels[graph.mask] = np.where(good, components, -1)
    return compact_labels(labels, min_pixels)


def compact_labels(labels: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Number the labels ≥ 0 that have at least ``min_pixels`` pixels 0, 1, … in their order; the rest become −1.

    Returns
    -------
    labels : same shape, int64
    count : int
    """
    chosen = labels >= 0
    _, inverse, sizes = np.unique(labels[chosen], return_inverse=True, return_counts=True)
    large = sizes >= min_pixels
    result = np.full(labels.shape, -1, dtype=np.int64)
    result[chosen] = np.where(large, np.cumsum(large) - 1, -1)[inverse]
    return result, int(large.sum())


@dataclass(frozen=True, eq=False)
class Crossings:
    """Contour-generator crossings of one view, with the heights the other views' silhouettes allow.

    Attributes
    ----------
    rows, cols : (c,) int64 — left pixel of each crossing (the right one is ``cols + 1``)
    fraction : (c,) float64 — sub-pixel position between them
    candidates : (c, B) float64 — heights (pixels) putting the point on a silhouette boundary of
        the right side in the other view's row; NaN padding
    slope : (c,) float64 — the height change per column of this view that keeps a point at
        the same column of the other view; along a row, the surface's contour point for the
        other view is where ``height − slope · col`` is extreme
    extreme : (c,) float64 — +1 where the silhouette boundary is the largest value of
        ``height − slope · col`` along the row, −1 where it is the smallest
    """

    rows: np.ndarray
    cols: np.ndarray
    fraction: np.ndarray
    candidates: np.ndarray
    slope: np.ndarray
    extreme: np.ndarray

    def heights_at(self, heights: np.ndarray) -> np.ndarray:
        """Current height at each crossing, interpolated between its two pixels."""
        left = heights[self.rows, self.cols]
        return left + self.fraction * (heights[self.rows, self.cols + 1] - left)

    def beyond_in_row(self, heights: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """How far (pixels of height) the crossing's own piece reaches beyond it in the other view.

        A point lies on the other view's silhouette only if nothing in its image row projects
        further out; the points of the same piece are known relative to it (integration), so
        this is the largest ``extreme · (height − slope · col)`` over the piece's pixels in the
        crossing's row, minus the crossing's own. A crossing that its piece reaches beyond (an
        inner fold, a bump behind a higher one) is a contour point inside the silhouette: put
        on the boundary, it would move the piece towards the camera.
        """
        beyond = np.zeros(len(self.rows))
        piece = labels[self.rows, self.cols]
        own = self.extreme * (self.heights_at(np.nan_to_num(heights)) - self.slope * (self.cols + self.fraction))
        usable = (labels >= 0) & np.isfinite(heights)
        rows, cols = np.nonzero(usable)
        count = int(labels.max()) + 1 if usable.any() else 0
        for slope, extreme in {(float(a), float(b)) for a, b in zip(self.slope, self.extreme)}:
            value = extreme * (heights[rows, cols] - slope * cols)
            table = np.full((heights.shape[0], max(count, 1)), -np.inf)
            np.maximum.at(table, (rows, labels[rows, cols]), value)
            chosen = (self.slope == slope) & (self.extreme == extreme) & (piece >= 0)
            beyond[chosen] = table[self.rows[chosen], piece[chosen]] - own[chosen]
        return np.where(np.isfinite(beyond), beyond, 0.0)


def _boundaries(mask: np.ndarray, right_side: bool) -> np.ndarray:
    """(S, B) positions of a mask's left or right run ends in every row (NaN padding)."""
    if right_side:
        ends = mask[:, :-1] & ~mask[:, 1:]
    else:
        ends = ~mask[:, :-1] & mask[:, 1:]
    counts = ends.sum(axis=1)
    table = np.full((mask.shape[0], max(int(counts.max()), 1)), np.nan)
    rows, cols = np.nonzero(ends)
    order = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[rows, order] = cols + 0.5
    return table


def contour_crossings(stack: ViewStack, view: int, *, grazing: float) -> Crossings:
    """Find where view ``view`` crosses the other views' contour generators (see module docstring)."""
    cameras = wonder3d_cameras()
    mask = stack.masks[view]
    normals = stack.smooth_model[view]
    steady = mask & (stack.facing[view] > grazing)
    pair = steady[:, :-1] & steady[:, 1:]
    parts = []
    for other, camera in enumerate(cameras):
        if other == view:
            continue
        to_other = stack.view_to_view(view, other)[0]  # col in the other view = · (col, row, w, 1)
        lateral = to_other[2]
        if abs(lateral) < _MIN_LATERAL:
            continue
        side = normals @ camera.direction
        crossing = pair & (np.sign(side[:, :-1]) != np.sign(side[:, 1:]))
        rows, cols = np.nonzero(crossing)
        if len(rows) == 0:
            continue
        fraction = side[rows, cols] / (side[rows, cols] - side[rows, cols + 1])
        normal = normals[rows, cols] * (1 - fraction[:, None]) + normals[rows, cols + 1] * fraction[:, None]
        faces_right = normal @ camera.rotation[0] > 0
        right = _boundaries(stack.masks[other], True)[rows]
        left = _boundaries(stack.masks[other], False)[rows]
        width = max(right.shape[1], left.shape[1])
        bounds = np.full((len(rows), width), np.nan)
        bounds[faces_right, : right.shape[1]] = right[faces_right]
        bounds[~faces_right, : left.shape[1]] = left[~faces_right]
        base = to_other[0] * (cols + fraction) + to_other[1] * rows + to_other[3]
        extreme = np.where(faces_right, 1.0, -1.0) * np.sign(lateral)
        parts.append((rows, cols, fraction, (bounds - base[:, None]) / lateral,
                      np.full(len(rows), -to_other[0] / lateral), extreme))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Crossings(empty, empty, np.zeros(0), np.zeros((0, 1)), np.zeros(0), np.zeros(0))
    width = max(part[3].shape[1] for part in parts)
    candidates = np.concatenate([np.pad(p[3], ((0, 0), (0, width - p[3].shape[1])), constant_values=np.nan) for p in parts])
    return Crossings(
        rows=np.concatenate([p[0] for p in parts]),
        cols=np.concatenate([p[1] for p in parts]),
        fraction=np.concatenate([p[2] for p in parts]),
        candidates=candidates,
        slope=np.concatenate([p[4] for p in parts]),
        extreme=np.concatenate([p[5] for p in parts]),
    )


def _sweep(
    stack: ViewStack,
    view: int,
    rows: np.ndarray,
    cols: np.ndarray,
    heights: np.ndarray,
    offsets: np.ndarray,
    depths: list[np.ndarray] | None,
    *,
    tolerance: float,
    grazing: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each offset: fraction of points outside the hull, agreeing with, and in front of other views.

    Returns
    -------
    outside, agree : (offsets,) float64 — summed over the other views
    violate : (6, offsets) float64 — per other view (zero for ``view`` itself)
    """
    cameras = wonder3d_cameras()
    outside = np.zeros(len(offsets))
    agree = np.zeros(len(offsets))
    violate = np.zeros((len(cameras), len(offsets)))
    base = np.stack([cols, rows, heights, np.ones_like(heights)], axis=1)
    normals = stack.smooth_model[view][rows, cols]
    row_grid = np.broadcast_to(rows[None, :].astype(np.float64), (len(offsets), len(rows)))
    for other, camera in enumerate(cameras):
        if other == view:
            continue
        transform = stack.view_to_view(view, other)
        col = (base @ transform[0])[None, :] + transform[0, 2] * offsets[:, None]
        distance = bilinear(stack.distance[other], row_grid, col, fill=0.5)
        outside += np.mean(distance > 1.0, axis=1)
        if depths is None or transform[2, 2] < -0.9:  # the opposite view sees the other side
            continue
        height = (base @ transform[2])[None, :] + transform[2, 2] * offsets[:, None]
        surface = bilinear(depths[other], row_grid, col, fill=np.nan)
        seen = (normals @ -camera.direction > grazing)[None, :] & (distance < -0.5) & np.isfinite(surface)
        gap = surface - height
        agree += np.mean(seen & (np.abs(gap) < tolerance), axis=1)
        violate[other] = np.mean(seen & (gap < -3.0 * tolerance), axis=1)
    return outside, agree, violate


def piece_offsets(
    stack: ViewStack,
    view: int,
    heights: np.ndarray,
    labels: np.ndarray,
    count: int,
    crossings: Crossings,
    depths: list[np.ndarray] | None,
    *,
    grazing: float,
    tolerance: float = 1.0,
    min_score: float = 0.02,
    samples: int = 600,
    seed: int = 0,
    previous: np.ndarray | None = None,
    max_deepening_px: float = 1.0,
) -> np.ndarray:
    """The offset (pixels, added to ``heights``) of every piece of one view.

    Votes from contour crossings in the piece (those the piece itself reaches beyond in the
    other view are not on its silhouette and are left out) and, when ``depths`` of the other
    views are given, from agreement with them; penalties for leaving the hull and for hiding other
    views' surfaces. Where the other views agree with a placement, the one view it would
    hide most is discounted: a single wrongly anchored view must not veto a placement the
    rest confirm (it would drag every piece it overlaps down with it). A piece without
    enough evidence (best score below ``min_score``) gets NaN: it is not placed and carves
    nothing.

    With ``previous`` (the offsets of an earlier round), a piece that round placed moves
    more than ``max_deepening_px`` deeper only if the deeper place scores at least twice its
    earlier place (or the earlier one no longer scores above ``min_score``): deeper carves
    more, and the other views' surfaces that agreement compares with may themselves be
    anchored wrongly or meet the piece only at its rim (the back view has no neighbour that
    sees its surface squarely), so they must not outvote by a hair the contours that placed it.

    Returns
    -------
    (count,) float64 — NaN for pieces left unplaced
    """
    rng = np.random.default_rng(seed)
    span = stack.size / 2.0
    offsets = np.arange(-span, span + _STEP / 2, _STEP)
    edges = np.concatenate([offsets - _STEP / 2, [offsets[-1] + _STEP / 2]])
    current = crossings.heights_at(np.nan_to_num(heights))
    crossing_piece = labels[crossings.rows, crossings.cols]
    same = crossing_piece == labels[crossings.rows, crossings.cols + 1]
    same &= crossings.beyond_in_row(heights, labels) <= _BEYOND_PX
    result = np.zeros(count)
    for piece in range(count):
        proposals = (crossings.candidates - current[:, None])[same & (crossing_piece == piece)]
        proposals = proposals[np.isfinite(proposals)]
        votes = gaussian_filter1d(np.histogram(proposals, bins=edges)[0].astype(np.float64), 2.0)
        votes *= 2.0 * min(len(proposals) / 30.0, 1.0) / max(len(proposals), 1)
        rows, cols = np.nonzero(labels == piece)
        if len(rows) > samples:
            chosen = rng.choice(len(rows), samples, replace=False)
            rows, cols = rows[chosen], cols[chosen]
        outside, agree, violate = _sweep(
            stack, view, rows, cols, heights[rows, cols], offsets, depths, tolerance=tolerance, grazing=grazing
        )
        agree = gaussian_filter1d(agree, 1.0)
        confirmed = np.clip(agree / _CONFIRMED, 0.0, 1.0)
        violation = violate.sum(axis=0) - confirmed * violate.max(axis=0)
        score = votes + agree - 2.0 * violation - outside
        best = int(np.argmax(score))
        result[piece] = offsets[best] if score[best] > min_score else np.nan
        if previous is not None and result[piece] < previous[piece] - max_deepening_px:
            earlier = int(np.argmin(np.abs(offsets - previous[piece])))
            if score[earlier] > max(min_score, 0.5 * score[best]):
                result[piece] = previous[piece]
    return result


def apply_offsets(heights: np.ndarray, mask: np.ndarray, labels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift each piece by its offset; unassigned pixels follow the nearest piece.

    Pixels of unplaced pieces (NaN offset), and all pixels when there is no piece, become NaN.
    """
    if len(offsets) == 0:
        return np.full(heights.shape, np.nan)
    nearest = extend_nearest(labels, labels >= 0)
    shift = np.where(mask & (nearest >= 0), offsets[np.maximum(nearest, 0)], np.nan)
    return heights + shift


def contour_constraints(
    crossings: Crossings, heights: np.ndarray, labels: np.ndarray, index: np.ndarray, *, tolerance: float, weight: float
) -> PointConstraints:
    """Point constraints from the crossings whose nearest candidate is within ``tolerance`` of ``heights``
    (and that their piece does not reach beyond in the other view)."""
    current = crossings.heights_at(np.nan_to_num(heights))
    gaps = crossings.candidates - current[:, None]
    nearest = np.nanargmin(np.where(np.isfinite(gaps), np.abs(gaps), np.inf), axis=1) if len(gaps) else np.zeros(0, int)
    gap = gaps[np.arange(len(gaps)), nearest] if len(gaps) else np.zeros(0)
    same = labels[crossings.rows, crossings.cols] == labels[crossings.rows, crossings.cols + 1]
    same &= crossings.beyond_in_row(heights, labels) <= _BEYOND_PX
    keep = same & np.isfinite(gap) & (np.abs(gap) < tolerance)
    left = index[crossings.rows[keep], crossings.cols[keep]]
    right = index[crossings.rows[keep], crossings.cols[keep] + 1]
    return PointConstraints(
        left=left,
        right=right,
        fraction=crossings.fraction[keep],
        height=(current + gap)[keep],
        weight=np.full(int(keep.sum()), float(weight)),
    )


def free_space_clamp(
    stack: ViewStack,
    depths: list[np.ndarray],
    *,
    confidence: float,
    tolerance: float,
    rounds: int = 2,
    max_dissenting_views: int | None = None,
) -> list[np.ndarray]:
    """Lift every view's surface wherever it lies behind a point another view sees squarely.

    A point in front of a view's surface (by more than ``tolerance``) contradicts that view:
    the view's camera sees free space where the point is, as it does where the point falls
    outside its silhouette. One view contradicted by the others is likely anchored too deep,
    and is lifted. A point that several views see free space at is more likely wrong itself
    (noisy normals bend a piece a few pixels towards its camera), and with
    ``max_dissenting_views`` it lifts nothing when more views than that dissent: otherwise
    every such point pushes the surfaces of the views it stands in front of outwards, and the
    object is carved too little everywhere.

    Parameters
    ----------
    depths : list of 6 (S, S) float — heights (pixels), NaN outside the masks
    confidence : float — only points with ``facing`` above this lift others
    tolerance : float — pixels of disagreement tolerated
    rounds : int — lifted surfaces are checked again this many times in all
    max_dissenting_views : int, optional — a point lifts nothing when more views than this see
        free space at it: it stands in front of their surfaces, or more than ``tolerance``
        outside their silhouettes (default: no limit)

    Returns
    -------
    list of 6 (S, S) float64 — new arrays
    """
    size = stack.size
    current = [np.array(d, dtype=np.float64) for d in depths]
    for _ in range(rounds):
        points = []
        for view in range(len(current)):
            rows, cols = np.nonzero(stack.masks[view] & (stack.facing[view] > confidence) & np.isfinite(current[view]))
            points.append(stack.points(view, rows, cols, current[view][rows, cols]))
        # (view, other) -> where the other view's points land in the view, and which stand in front of it
        landed = {}
        dissent = [np.zeros(len(p), dtype=np.intp) for p in points]
        for view, surface in enumerate(current):
            filled = np.where(stack.masks[view], surface, 0.0)
            coverage = stack.masks[view].astype(np.float64)
            for other in range(len(current)):
                if other == view or len(points[other]) == 0:
                    continue
                row, col, excess = _excess_over(stack, view, points[other], filled, coverage)
                in_front = excess > tolerance
                landed[view, other] = (row, col, excess, in_front)
                dissent[other] += in_front | (bilinear(stack.distance[view], row, col, fill=float(size)) > tolerance)
        lifted = []
        for view, surface in enumerate(current):
            lift = np.zeros_like(surface)
            for other in range(len(current)):
                if (view, other) not in landed:
                    continue
                row, col, excess, bad = landed[view, other]
                if max_dissenting_views is not None:
                    bad = bad & (dissent[other] <= max_dissenting_views)
                if bad.any():
                    r = np.clip(np.rint(row[bad]).astype(np.intp), 0, size - 1)
                    c = np.clip(np.rint(col[bad]).astype(np.intp), 0, size - 1)
                    np.maximum.at(lift, (r, c), excess[bad])
            lifted.append(surface + lift)
        current = lifted
    return current


def drop_contradicted(
    before: np.ndarray,
    after: np.ndarray,
    labels: np.ndarray,
    count: int,
    *,
    lift_px: float,
    max_fraction: float,
    facing: np.ndarray | None = None,
    min_facing: float = 0.0,
    landings: Landings | None = None,
    max_other_fraction: float = 0.1,
    max_contradicted_share: float = 0.5,
    parts: np.ndarray | None = None,
) -> np.ndarray:
    """Unplace the pieces of one view that :func:`free_space_clamp` had to lift in many places.

    The clamp lifts a surface only where another view's points land on it. A piece anchored
    too deep as a whole (e.g. two surfaces joined across a depth step that no grazing band
    marks) is then lifted at scattered pixels and stays deep in between, and fusion would
    carve a comb of spikes into the object. Such a piece carves nothing instead — unless a
    single other view does nearly all the lifting (``landings``): then that view is the
    likelier one to be wrong (noisy normals make a view bulge towards its camera), and the
    piece keeps its lifted heights. With ``landings`` a piece also carves nothing when most
    of the pixels that other views' points reach (on the surface or in front of it) have a
    point in front, however few of its pixels they reach (a piece the other views see only
    obliquely is reached sparsely); the same exemption applies. With ``parts`` (a finer split
    of the view), a contradicted piece is examined again part by part, and only the parts
    contradicted on their own are unplaced: a piece that joined surfaces across a depth step
    is often anchored right on one side of it.

    Parameters
    ----------
    before, after : (S, S) float — heights (pixels) before and after the clamp, NaN = unplaced
    labels : (S, S) int — pieces (−1 unassigned; those pixels follow the nearest piece)
    count : int — number of pieces
    lift_px : float — a pixel counts as lifted when the clamp raised it by more than this
    max_fraction : float — pieces with a larger fraction of lifted pixels become NaN
    facing : (S, S) float, optional — how squarely each pixel faces the camera
    min_facing : float — only pixels facing at least this much are counted (on steep pixels
        the interpolated height of a correct surface lies below the true one, so correct
        points of other views seem to stick out of it)
    landings : Landings, optional — where the other views' points land on this surface
        (:func:`landings_on`)
    max_other_fraction : float — a piece is kept when the views other than the one lifting
        most of its counted pixels lift at most this fraction of them
    max_contradicted_share : float — a piece becomes NaN when, among its counted pixels that
        other views' points reach, more than this share has a point sticking out
    parts : (S, S) int, optional — a finer split of the view (−1 unassigned), such as
        :func:`segment_pieces` with a higher ``limb_grazing``

    Returns
    -------
    (S, S) float64 — a new array
    """
    lifted = np.nan_to_num(after - before) > lift_px
    counted = np.ones(lifted.shape, dtype=bool) if facing is None else facing >= min_facing
    placed = np.isfinite(after)

    def is_contradicted(scored: np.ndarray) -> bool:
        contradicted = lifted[scored].mean() > max_fraction
        if landings is not None:
            against = landings.sticking_out[:, scored]
            reached = against.any(axis=0) | landings.on_surface[scored]
            contradicted |= bool(reached.any() and against.any(axis=0)[reached].mean() > max_contradicted_share)
            others = np.delete(against, int(np.argmax(against.sum(axis=1))), axis=0)
            contradicted &= bool(others.any(axis=0).mean() > max_other_fraction)
        return bool(contradicted)

    nearest = extend_nearest(labels, labels >= 0)
    finer = None if parts is None else extend_nearest(parts, parts >= 0)
    dropped = np.zeros(lifted.shape, dtype=bool)
    for piece in range(count):
        members = (nearest == piece) & placed
        if not (members & counted).any() or not is_contradicted(members & counted):
            continue
        if finer is None:
            dropped |= members
            continue
        for part in np.unique(finer[members]):
            within = members & (finer == part)
            if not (within & counted).any() or is_contradicted(within & counted):
                dropped |= within
    return np.where(dropped, np.nan, np.asarray(after, dtype=np.float64))


@dataclass(frozen=True, eq=False)
class Landings:
    """Where the other views' confident points land on one view's surface.

    Attributes
    ----------
    sticking_out : (6, S, S) bool — ``[k, row, col]``: a point of view ``k`` lies more than
        ``lift_px`` in front of the surface at that pixel
    on_surface : (S, S) bool — some other view's point lies within ``lift_px`` of the surface
    """

    sticking_out: np.ndarray
    on_surface: np.ndarray


def landings_on(
    stack: ViewStack, view: int, surface: np.ndarray, depths: list[np.ndarray], *, confidence: float, lift_px: float
) -> Landings:
    """Project the other views' points facing their camera more than ``confidence`` into one view.

    Parameters
    ----------
    view : int
    surface : (S, S) float — that view's heights (pixels), NaN = unplaced
    depths : list of 6 (S, S) float — every view's heights
    lift_px : float — a point sticks out when it lies more than this in front of ``surface``,
        and lies on it when within this of it (points further behind belong to other surfaces)
    """
    size = stack.size
    filled = np.where(stack.masks[view], np.nan_to_num(surface), 0.0)
    coverage = stack.masks[view] & np.isfinite(surface)
    sticking_out = np.zeros((len(depths), size, size), dtype=bool)
    on_surface = np.zeros((size, size), dtype=bool)
    for other in range(len(depths)):
        if other == view:
            continue
        rows, cols = np.nonzero(stack.masks[other] & (stack.facing[other] > confidence) & np.isfinite(depths[other]))
        row, col, excess = _excess_over(stack, view, stack.points(other, rows, cols, depths[other][rows, cols]),
                                        filled, coverage.astype(np.float64))
        pixel = (np.clip(np.rint(row).astype(np.intp), 0, size - 1), np.clip(np.rint(col).astype(np.intp), 0, size - 1))
        out = excess > lift_px
        near = np.abs(excess) <= lift_px
        sticking_out[other, pixel[0][out], pixel[1][out]] = True
        on_surface[pixel[0][near], pixel[1][near]] = True
    return Landings(sticking_out=sticking_out, on_surface=on_surface)


def _excess_over(
    stack: ViewStack, view: int, points: np.ndarray, filled: np.ndarray, coverage: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project model points into a view: their (row, col) and how far (pixels) each lies in front
    of the surface ``filled`` (NaN where the point falls outside ``coverage``)."""
    projected = points @ stack.model_to_pixel[view][:3, :3].T + stack.model_to_pixel[view][:3, 3]
    col, row, height = projected[:, 0], projected[:, 1], projected[:, 2]
    inside = bilinear(coverage, row, col, fill=0.0) > 1.0 - 1e-6
    return row, col, np.where(inside, height - bilinear(filled, row, col, fill=0.0), np.nan)


def pieces_flagged(
    flags: np.ndarray,
    labels: np.ndarray,
    count: int,
    placed: np.ndarray,
    *,
    max_fraction: float,
    counted: np.ndarray | None = None,
) -> np.ndarray:
    """The placed pixels of every piece with more than ``max_fraction`` of its pixels flagged.

    Unassigned pixels belong to the nearest piece; only pixels in ``counted`` (default: all)
    enter the fraction.

    Returns
    -------
    (S, S) bool
    """
    nearest = extend_nearest(labels, labels >= 0)
    counted = np.ones(flags.shape, dtype=bool) if counted is None else counted
    result = np.zeros(flags.shape, dtype=bool)
    for piece in range(count):
        members = (nearest == piece) & placed
        scored = members & counted
        if scored.any() and flags[scored].mean() > max_fraction:
            result |= members
    return result


def outside_hull(stack: ViewStack, view: int, heights: np.ndarray) -> np.ndarray:
    """How far (pixels) each surface point of one view lies outside the other views' silhouettes.

    Returns
    -------
    (S, S) float64 — max over the other views of the silhouette distance at the point's
    projection (≤ 0 inside the hull); NaN where ``heights`` is NaN
    """
    rows, cols = np.nonzero(np.isfinite(heights))
    points = stack.points(view, rows, cols, heights[rows, cols])
    worst = np.full(len(rows), -np.inf)
    for other in range(len(stack.masks)):
        if other == view:
            continue
        projected = points @ stack.model_to_pixel[other][:3, :3].T + stack.model_to_pixel[other][:3, 3]
        distance = bilinear(stack.distance[other], projected[:, 1], projected[:, 0], fill=float(stack.size))
        worst = np.maximum(worst, distance)
    out = np.full(heights.shape, np.nan)
    out[rows, cols] = worst
    return out
