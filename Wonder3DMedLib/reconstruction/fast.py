"""The CPU backend (``--recon fast``): visual hull + normal integration + anchoring + carving.

Data form: :class:`~Wonder3DMedLib.views.MultiviewImages` in;
:class:`~Wonder3DMedLib.reconstruction.backends.ReconstructedField` holding an
:class:`~Wonder3DMedLib.reconstruction.meshing.SDFGrid` over the box [−1, 1]³ out.

Steps (each in its own module):

1. decode the views once (:mod:`.view_stack`): masks, silhouette distances, normals per frame;
2. integrate every normal map into a height map with discontinuities (:mod:`.integration`, BiNI);
3. split each view into reliably connected pieces and give each piece its absolute depth from
   the other views' silhouette contours, agreement with the other views and the visual hull
   (:mod:`.anchoring`), twice — the second round sees the first round's depths, and moves a
   piece deeper than the first put it only on twice the evidence;
4. integrate again, holding the anchored depths and the contour points;
5. lift any surface that would hide what another camera sees squarely (free-space clamp; a
   point that several views see free space at is the likelier one to be wrong and lifts
   nothing), and
   unplace the pieces the clamp had to lift in many places, or that most of the other views'
   points reaching them stick out of (their anchoring contradicts the other views; lifting
   only where other views' points land would leave a comb of spikes), unless a single other
   view did nearly all the lifting; a contradicted piece is examined again part by part
   (a finer split) and only its contradicted parts are unplaced; then every unplaced part is
   anchored once more on its own, and kept if the hull, the clamp and the drop rule accept it;
6. fuse hull and carving into a signed distance grid (:mod:`.fusion`).

Views larger than ``FastOptions.working_size`` are resampled to it (thresholds are in working
pixels). About 6–11 s on two cores for 256² views and a 192³ grid.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np

from Wonder3DMedLib.progress import ProgressCallback, report
from Wonder3DMedLib.reconstruction.anchoring import (
    apply_offsets,
    compact_labels,
    contour_constraints,
    contour_crossings,
    drop_contradicted,
    free_space_clamp,
    landings_on,
    outside_hull,
    piece_offsets,
    pieces_flagged,
    segment_pieces,
)
from Wonder3DMedLib.reconstruction._images import extend_nearest
from Wonder3DMedLib.reconstruction.backends import ReconstructedField
from Wonder3DMedLib.reconstruction.fusion import fuse_views
from Wonder3DMedLib.reconstruction.integration import integrate_normals
from Wonder3DMedLib.reconstruction.view_stack import DETECTION_SMOOTHING_PX, ViewStack
from Wonder3DMedLib.views import MultiviewImages

__all__ = ["FastOptions", "reconstruct_field", "fast_heights", "reanchor_unplaced_parts"]


@dataclass(frozen=True)
class FastOptions:
    """Settings of the CPU backend (lengths in working pixels).

    Attributes
    ----------
    working_size : int
        Larger views are resampled to this resolution.
    iterations : int
        BiNI re-weighting iterations of the first integration (the second uses half).
    sharpness : float
        BiNI's ``k``.
    unbiased_above : float or None
        The first integration weights each equation by ``1 / max(n_z, this)``
        (:func:`~Wonder3DMedLib.reconstruction.integration.integrate_normals`): noisy normals
        make BiNI's plain equations integrate slopes too flat, so heights drift by several
        pixels over a long piece and anchoring leaves the piece tilted. The refinement keeps
        the plain equations (it only moves the anchored surface towards the contours), and
        the plain equations are also solved once to split pieces: an edge either solution
        cuts separates them.
    grazing : float
        Pixels facing their camera less than this (cosine) do not link pieces or vote.
    limb_grazing : float
        Pixels facing their camera less than this also separate pieces, but their gaps are not
        closed (noise scatters such pixels everywhere). A limb is sampled at pixel centres: a
        surface curving away with a radius of r pixels faces its camera by about √(2d/r) at its
        last pixel, d < 1 px from the limb, so along a tightly curved limb (a gyrus' crown
        seen from behind) many rows' last pixel faces it by 0.3–0.4, the band below
        ``grazing`` has gaps wider than the closing bridges, and integration joins the
        surfaces in front of and behind the depth step.
    limb_continuation : float
        A band of pixels below ``limb_grazing`` (or ``recheck_limb_grazing``) goes on through
        the pixels connected to it that face the camera less than that plus this (hysteresis):
        noisy normals lift single limb pixels a little above the threshold and open gaps the
        closing cannot reach, while the pixels noise pushes below it elsewhere touch no band.
        Clean limbs benefit too: the pixels just before a crown turns away face its camera
        by 0.35–0.5.
    cut : float
        Bilateral edge weight below which an edge separates pieces.
    grazing_gap_px : int
        Gaps of up to twice this many pixels in a grazing band are closed before it cuts
        pieces (noisy normals scatter pixels above ``grazing`` across the band).
    min_piece_px : int
        Smaller pieces follow their neighbours.
    smoothing_px : float
        Gaussian sigma of the normals used for detection and confidence (not for integration):
        contour crossings are sign changes of these normals, and noise in less smoothed ones
        adds spurious crossings that misplace pieces.
    constraint_weight : float
        Weight of one contour point against one difference equation.
    constraint_tolerances_px : tuple of float
        Rounds of the second integration: contour points further than this from the current
        surface are ignored in that round.
    refine_iterations : int
        BiNI iterations of each round.
    outside_tolerance_px, max_outside_fraction : float
        After refinement, surface points further outside the visual hull than this carve
        nothing, and a piece with more than this fraction of such points carves nothing.
    anchor_weight : float
        Weight of the anchored heights in the second integration.
    clamp_confidence, clamp_tolerance_px : float
        Free-space clamp: which points may lift others, and by how much disagreement.
    clamp_max_dissenting_views : int or None
        A point that more views than this see free space at (it stands in front of their
        surfaces or outside their silhouettes) lifts none of them
        (:func:`~Wonder3DMedLib.reconstruction.anchoring.free_space_clamp`): it is the
        likelier one to be wrong. Without this limit every point that noise or a joined depth
        step puts a few pixels outside the object lifts the surfaces it stands in front of,
        and the object is carved too little. The drop rule still counts the lifts of every
        point: where two views are anchored too deep together, the points in front of both
        lift neither, but the rule still finds them contradicted. ``None``: every point lifts.
    max_lifted_fraction, lifted_min_facing : float
        A piece the clamp had to lift (by more than twice its tolerance) on more than this
        fraction of its pixels facing the camera at least ``lifted_min_facing`` is anchored
        wrongly as a whole: it carves nothing. (Steeper pixels are not counted: there the
        interpolated height of a correct surface lies well below the true one, so correct
        points of other views seem to stick out of it.) Unless one other view does nearly
        all the lifting: when the remaining views lift at most ``max_other_lifted_fraction``
        of those pixels, that one view is the likelier to be wrong and the piece is kept.
    max_contradicted_share : float
        A piece also carves nothing when, among its pixels facing the camera at least
        ``lifted_min_facing`` that other views' points reach (on the surface or in front of
        it), more than this share has a point in front. Pixels of a piece that the other
        views see only obliquely are reached sparsely, so a piece 15 px too deep may be lifted
        on only 15 % of its pixels while nearly every point that reaches it contradicts it.
    recheck_limb_grazing : float
        A contradicted piece is examined again after a finer split (pixels facing less than
        this separate parts, as ``limb_grazing`` does), and only its parts contradicted on
        their own carve nothing; afterwards every unplaced part of this split is anchored
        once more on its own (:func:`reanchor_unplaced_parts`). Splitting every view this
        finely from the start would cut noisy views into many small, badly anchored pieces.
    max_deepening_px : float or None
        The second anchoring round, which adds agreement with the other views' surfaces of
        the first, may move a piece the first placed more than this many pixels deeper only
        where the deeper place scores at least twice the first
        (:func:`~Wonder3DMedLib.reconstruction.anchoring.piece_offsets`). Noise bends large
        pieces, so at their right place a few rim points leave the hull or hide a
        neighbour's surface, and a deeper place with a little chance agreement and no
        penalty won by a hair (the back view, whose surface no other view sees squarely,
        then carved too deep). ``None``: the second round decides alone.
    reanchor_min_score : float
        The evidence (:func:`~Wonder3DMedLib.reconstruction.anchoring.piece_offsets`' score)
        a part needs to be placed by :func:`reanchor_unplaced_parts`. Its piece found no
        place in two rounds, or was dropped: a place that only a few per cent of its pixels
        agree with, and no contour votes for, is chance. Placed too deep, such a part carves
        a hole that no other view contradicts where none sees the part's surface squarely
        (the back view).
    """

    working_size: int = 256
    iterations: int = 30
    sharpness: float = 2.0
    unbiased_above: float | None = 0.6
    grazing: float = 0.3
    limb_grazing: float = 0.35
    limb_continuation: float = 0.15
    cut: float = 0.2
    grazing_gap_px: int = 3
    min_piece_px: int = 30
    smoothing_px: float = DETECTION_SMOOTHING_PX
    constraint_weight: float = 0.5
    constraint_tolerances_px: tuple[float, ...] = (1.5,)
    outside_tolerance_px: float = 1.5
    max_outside_fraction: float = 0.25
    refine_iterations: int = 10
    anchor_weight: float = 1e-4
    clamp_confidence: float = 0.3
    clamp_tolerance_px: float = 1.0
    clamp_max_dissenting_views: int | None = 1
    max_lifted_fraction: float = 0.2
    lifted_min_facing: float = 0.5
    max_other_lifted_fraction: float = 0.1
    max_contradicted_share: float = 0.5
    recheck_limb_grazing: float = 0.45
    max_deepening_px: float | None = 1.0
    reanchor_min_score: float = 0.1


def fast_heights(
    views: MultiviewImages, *, options: FastOptions | None = None, progress: ProgressCallback | None = None
) -> tuple[ViewStack, list[np.ndarray], dict]:
    """Steps 1–5: the decoded views and six anchored height maps (pixels, NaN outside the masks).

    Returns
    -------
    stack : ViewStack
    heights : list of 6 (S, S) float64
    details : dict — pieces per view and stage timings
    """
    options = options or FastOptions()
    timings = {}
    started = time.perf_counter()
    working = min(views.size, options.working_size)
    stack = ViewStack.from_views(views, size=working, smoothing_px=options.smoothing_px)
    timings["decode"] = time.perf_counter() - started
    started = time.perf_counter()
    shapes, labels, parts, counts, crossings = [], [], [], [], []
    for view in range(6):
        report(progress, 0.5 * view / 6.0, f"integrating normals of view {view + 1}/6")
        integrate = partial(
            integrate_normals, stack.normals_camera[view], stack.masks[view], iterations=options.iterations,
            sharpness=options.sharpness,
        )
        shape = integrate(unbiased_above=options.unbiased_above)
        # Pieces split where either weighting's solution cuts: the two settle BiNI's cuts
        # differently where a limb fades out, and an edge that one of them cuts is a likely step.
        cuts = shape.edge_weights()
        if options.unbiased_above is not None:
            cuts = np.minimum(cuts, integrate(graph=shape.graph).edge_weights())
        # A grazing band splits pieces if it is grazing per pixel or after smoothing: noisy
        # normals scatter single pixels above the threshold and would bridge the band.
        facing = np.minimum(stack.facing_raw[view], stack.facing[view])
        split = partial(
            segment_pieces, shape, facing, grazing=options.grazing, cut=options.cut, min_pixels=options.min_piece_px,
            close_gaps_px=options.grazing_gap_px, limb_continuation=options.limb_continuation, edge_weights=cuts,
        )
        piece_labels, count = split(limb_grazing=options.limb_grazing)
        view_parts, _ = split(limb_grazing=options.recheck_limb_grazing)
        shapes.append(shape)
        labels.append(piece_labels)
        parts.append(view_parts)
        counts.append(count)
        crossings.append(contour_crossings(stack, view, grazing=options.grazing))
    timings["integrate"] = time.perf_counter() - started
    started = time.perf_counter()
    depths, offsets = None, [None] * 6
    for round_ in range(2):
        report(progress, 0.5 + 0.1 * round_, "anchoring depths")
        anchored = []
        for view in range(6):
            offsets[view] = piece_offsets(
                stack, view, shapes[view].heights, labels[view], counts[view], crossings[view], depths, grazing=options.grazing,
                previous=None if options.max_deepening_px is None else offsets[view],
                max_deepening_px=options.max_deepening_px or 0.0,
            )
            anchored.append(apply_offsets(shapes[view].heights, stack.masks[view], labels[view], offsets[view]))
        depths = anchored
    timings["anchor"] = time.perf_counter() - started
    started = time.perf_counter()
    refined = []
    for view in range(6):
        report(progress, 0.7 + 0.25 * view / 6.0, f"refining view {view + 1}/6")
        placed = np.isfinite(depths[view])
        current = shapes[view]
        heights = depths[view]
        for tolerance in options.constraint_tolerances_px:
            constraints = contour_constraints(
                crossings[view],
                heights,
                labels[view],
                current.graph.index,
                tolerance=tolerance,
                weight=options.constraint_weight,
            )
            current = integrate_normals(
                stack.normals_camera[view],
                stack.masks[view],
                prior=np.nan_to_num(depths[view]),
                prior_weight=np.where(placed, options.anchor_weight, 0.0),
                constraints=constraints,
                iterations=options.refine_iterations,
                sharpness=options.sharpness,
                initial=replace(current, heights=np.where(placed, heights, np.nan_to_num(current.heights))),
            )
            heights = np.where(placed, current.heights, np.nan)
        refined.append(_drop_outside(stack, view, heights, labels[view], counts[view], options))
    timings["refine"] = time.perf_counter() - started
    started = time.perf_counter()
    lifted, tested = _clamp(stack, refined, options)
    clamped = [
        _drop_contradicted(
            stack, view, before, after, refined, labels[view], counts[view], options, parts=parts[view], kept=final
        )
        for view, (before, after, final) in enumerate(zip(refined, tested, lifted))
    ]
    relative = [np.where(np.isfinite(r), r, shape.heights) for r, shape in zip(refined, shapes)]
    clamped = reanchor_unplaced_parts(stack, relative, clamped, parts, crossings, options)
    timings["clamp"] = time.perf_counter() - started
    details = {"working_size": working, "pieces": counts, "timings_s": timings, "options": asdict(options)}
    return stack, clamped, details


def reanchor_unplaced_parts(
    stack: ViewStack,
    heights: list[np.ndarray],
    clamped: list[np.ndarray],
    parts: list[np.ndarray],
    crossings: list,
    options: FastOptions,
) -> list[np.ndarray]:
    """Anchor every view's unplaced parts once more, each on its own, against the final surfaces.

    A piece that spanned a depth step was anchored for one side of it and dropped, or found
    no place at all; split more finely (``parts``), each side often has a clear place. A
    re-anchored part is kept only if the free-space clamp and the drop rule accept it.

    Parameters
    ----------
    heights : list of 6 (S, S) float — integrated heights (pixels) on every mask pixel, each
        part correct up to a constant
    clamped : list of 6 (S, S) float — the placed heights, NaN = unplaced
    parts : list of 6 (S, S) int — the finer split of each view (−1 unassigned)
    crossings : list of 6 :class:`~Wonder3DMedLib.reconstruction.anchoring.Crossings`

    Returns
    -------
    list of 6 (S, S) float64 — ``clamped`` with the accepted parts placed
    """
    trials, moves = [], []
    for view in range(6):
        unplaced = stack.masks[view] & np.isnan(clamped[view])
        labels, count = compact_labels(np.where(unplaced, parts[view], -1), options.min_piece_px)
        if count == 0:
            moves.append(None)
            trials.append(clamped[view])
            continue
        offsets = piece_offsets(
            stack, view, heights[view], labels, count, crossings[view], clamped, grazing=options.grazing,
            min_score=options.reanchor_min_score,
        )
        # Pixels between parts follow the nearest one; those of parts too small to anchor stay unplaced.
        nearest = extend_nearest(labels, labels >= 0)
        placed = unplaced & ((labels >= 0) | (parts[view] < 0)) & (nearest >= 0)
        moves.append((placed, labels, count))
        trials.append(np.where(placed, heights[view] + offsets[np.maximum(nearest, 0)], clamped[view]))
    lifted, tested = _clamp(stack, trials, options)
    result = []
    for view, move in enumerate(moves):
        if move is None:
            result.append(clamped[view])
            continue
        placed, labels, count = move
        inside = _drop_outside(stack, view, np.where(placed, trials[view], np.nan), labels, count, options)
        checked = _drop_contradicted(
            stack, view, inside, np.where(np.isfinite(inside), tested[view], np.nan), trials, labels, count, options,
            surface=trials[view], kept=lifted[view],
        )
        result.append(np.where(placed, checked, clamped[view]))
    return result


def _clamp(
    stack: ViewStack, depths: list[np.ndarray], options: FastOptions
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The free-space clamp of step 5 with the backend's options.

    Returns the lifted heights, in which points that more than
    ``options.clamp_max_dissenting_views`` views see free space at lift nothing, and the
    heights every point lifts, which the drop rule tests: where two views are both too deep,
    the points in front of them lift neither, but they still show that both are contradicted.
    """
    lift = partial(free_space_clamp, stack, confidence=options.clamp_confidence, tolerance=options.clamp_tolerance_px)
    tested = lift(depths)
    if options.clamp_max_dissenting_views is None:
        return tested, tested
    return lift(depths, max_dissenting_views=options.clamp_max_dissenting_views), tested


def _drop_contradicted(
    stack: ViewStack,
    view: int,
    before: np.ndarray,
    after: np.ndarray,
    depths: list[np.ndarray],
    labels: np.ndarray,
    count: int,
    options: FastOptions,
    *,
    parts: np.ndarray | None = None,
    surface: np.ndarray | None = None,
    kept: np.ndarray | None = None,
) -> np.ndarray:
    """The drop rule of step 5 with the backend's options; the other views' points are those of
    ``depths``, landing on ``surface`` (default ``before``). The pieces it keeps get the heights
    ``kept`` (default ``after``)."""
    lift_px = 2.0 * options.clamp_tolerance_px
    surface = before if surface is None else surface
    landings = landings_on(stack, view, surface, depths, confidence=options.clamp_confidence, lift_px=lift_px)
    checked = drop_contradicted(
        before, after, labels, count, lift_px=lift_px, max_fraction=options.max_lifted_fraction,
        facing=stack.facing[view], min_facing=options.lifted_min_facing, landings=landings,
        max_other_fraction=options.max_other_lifted_fraction,
        max_contradicted_share=options.max_contradicted_share, parts=parts,
    )
    return checked if kept is None else np.where(np.isfinite(checked), kept, np.nan)


def _drop_outside(stack: ViewStack, view: int, heights: np.ndarray, labels: np.ndarray, count: int, options: FastOptions):
    """Unplace surface points outside the hull, and whole pieces that are mostly outside it."""
    outside = outside_hull(stack, view, heights) > options.outside_tolerance_px
    outside |= pieces_flagged(outside, labels, count, np.isfinite(heights), max_fraction=options.max_outside_fraction)
    return np.where(outside, np.nan, heights)


def reconstruct_field(
    views: MultiviewImages,
    *,
    resolution: int = 192,
    progress: ProgressCallback | None = None,
    options: FastOptions | None = None,
) -> ReconstructedField:
    """Run the CPU backend (see the module docstring).

    Parameters
    ----------
    views : MultiviewImages
    resolution : int
        Points per axis of the signed distance grid over [−1, 1]³.
    progress : callable, optional
    options : FastOptions, optional

    Returns
    -------
    ReconstructedField
        ``method='fast'``, an SDFGrid, no colour function.
    """
    from threadpoolctl import threadpool_limits

    # Many small sparse solves: multithreaded BLAS only adds contention (10x slower on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        stack, heights, details = fast_heights(
            views, options=options, progress=None if progress is None else (lambda f, m: progress(0.8 * f, m))
        )
        started = time.perf_counter()
        grid = fuse_views(
            stack, heights, resolution=resolution, progress=None if progress is None else (lambda f, m: progress(0.8 + 0.2 * f, m))
        )
        details["timings_s"]["fuse"] = time.perf_counter() - started
    return ReconstructedField(sdf=grid, method="fast", details=details)
