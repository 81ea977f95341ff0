"""``ntu``: NTU RGB+D 60 (Shahroudy et al., CVPR 2016) and NTU RGB+D 120 (Liu et al., TPAMI
2019), the Kinect v2 3D skeletons.

On-disk format (``nturgbd_skeletons_s001_to_s017.zip`` and, for NTU 120,
``nturgbd_skeletons_s018_to_s032.zip``, zipped or unpacked into ``nturgb+d_skeletons/``)::

    SsssCcccPpppRrrrAaaa.skeleton     setup sss, camera ccc (1-3), performer ppp,
                                      replication rrr (1-2), action aaa; e.g. S001C002P003R002A013

Each file is text, one record per line (:func:`read_skeleton`, :func:`write_skeleton`)::

    frame count
    per frame:   body count
      per body:  bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence
                 handRightState isRestricted leanX leanY trackingState        (10 values)
                 joint count (25)
                 per joint: x y z depthX depthY colorX colorY orientationW orientationX
                            orientationY orientationZ trackingState           (12 values)

x, y, z are metres in the camera's coordinates; the joint order is the Kinect v2 order of
the ``ntu25`` layout. Source: the dataset's reader ``read_skeleton_file.m`` and README in
github.com/shahroudy/NTURGB-D.

Samples with missing or incomplete skeletons: the official lists
``NTU_RGBD_samples_with_missing_skeletons.txt`` (302 samples) and
``NTU_RGBD120_samples_with_missing_skeletons.txt`` (535) are skipped, found next to the data
(or given with ``missing_list``); files where no body is ever seen are skipped as well.

Bodies (:func:`select_bodies`): Kinect also "tracks" furniture and flickers between IDs. Per
bodyID, ones seen in fewer than ``min_frames`` (10) frames and ones whose median x spread
over y spread across the joints exceeds 0.8 (people are taller than wide; the dataset
authors' FAQ filters noise bodies this way) are dropped, unless no body would remain. The
rest are ranked by motion energy, the summed variance over time of every joint's x, y, z
(the authors' FAQ heuristic for the main actor), and put, best first, into up to ``bodies``
(2) slots; a body joins an earlier slot when it is never seen at the same time as what the
slot holds (a person whose ID changed), else opens the next slot, else is dropped. A slot
with nobody is zeros, so a two-person action is one sample ``(time, 2, 25, 3)``, scored per
video, not per person. Frames before the first and after the last frame with a kept body
are cut.

Splits (``split``; Shahroudy et al. 2016, Liu et al. 2019):

- ``cross-subject`` (``xsub``): training performers 1 2 4 5 8 9 13 14 15 16 17 18 19 25 27
  28 31 34 35 38 (NTU 60), plus 45 46 47 49 50 52 53 54 55 56 57 58 59 70 74 78 80 81 82 83
  84 85 86 89 91 92 93 94 95 97 98 100 103 for NTU 120; the others test.
- ``cross-view`` (``xview``): cameras 2 and 3 train, camera 1 tests.
- ``cross-setup`` (``xset``, NTU 120 only): even setup numbers train, odd ones test.

``version=60`` uses setups 1-17 and actions 1-60 of whatever is on disk; ``version=120``
everything (setups 1-32, actions 1-120). Window subjects are the performers. Parsed files
are cached (``cached_parse``), so the text is read once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.archive import open_zip, read_member
from harkit.data.dataset import WindowedDataset
from harkit.data.skeleton import LENGTH_POLICIES, SkeletonInfo, check_choice, skeleton_dataset
from harkit.data.sources import DATASETS
from harkit.data.splits import split_sequences
from harkit.data.store import cached_parse, configured_data_dir
from harkit.data.textio import check_range, decode, plain_int
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

HOME_URL = "https://rose1.ntu.edu.sg/dataset/actionRecognition/"
ARCHIVES = ("nturgbd_skeletons_s001_to_s017.zip", "nturgbd_skeletons_s018_to_s032.zip")
FOLDERS = ("nturgb+d_skeletons", "nturgbd_skeletons", "skeletons")
MISSING_LISTS = ("NTU_RGBD_samples_with_missing_skeletons.txt",
                 "NTU_RGBD120_samples_with_missing_skeletons.txt",
                 "samples_with_missing_skeletons.txt")
BODY_FIELDS = ("bodyID", "clipedEdges", "handLeftConfidence", "handLeftState",
               "handRightConfidence", "handRightState", "isRestricted", "leanX", "leanY",
               "trackingState")
JOINT_FIELDS = ("x", "y", "z", "depthX", "depthY", "colorX", "colorY", "orientationW",
                "orientationX", "orientationY", "orientationZ", "trackingState")
_BODY_INTS = (0, 1, 2, 3, 4, 5, 6, 9)  # the integer fields of the body line
N_JOINTS = 25
RATE = 30.0
XSUB60_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
XSUB120_TRAIN = (*XSUB60_TRAIN, 45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74,
                 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
XVIEW_TRAIN_CAMERAS = (2, 3)
SPLITS = {"cross-subject": "cross-subject", "xsub": "cross-subject",
          "cross-view": "cross-view", "xview": "cross-view",
          "cross-setup": "cross-setup", "xset": "cross-setup"}
CLASSES = [
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "put something inside pocket / take out something from pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone",
    "playing with phone/tablet", "typing on a keyboard", "pointing to something with finger",
    "taking a selfie", "check time (from watch)", "rub two hands together", "nod head/bow",
    "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling",
    "touch head (headache)", "touch chest (stomachache/heart pain)", "touch back (backache)",
    "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other", "put on headphone",
    "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down",
    "make ok sign", "make victory sign", "staple book", "counting money", "cutting nails",
    "cutting paper (using scissors)", "snapping fingers", "open bottle", "sniff (smell)",
    "squat down", "toss a coin", "fold paper", "ball up paper", "play magic cube",
    "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box",
    "move heavy objects", "shake fist", "throw up cap/hat", "hands up (both hands)",
    "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself",
    "blow nose", "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear",
    "exchange things with other person",
    "support somebody with one's hand (someone is sick, help him to walk)",
    "finger-guessing game (playing rock-paper-scissors)"]
"""The 120 action names (A1 ... A120) of the dataset's README; NTU 60 has the first 60."""
CACHE_VERSION = 1
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class SampleName:
    """The ids in a sample name ``SsssCcccPpppRrrrAaaa``.

    Example:
        >>> s = SampleName.parse("S001C002P003R002A013.skeleton")
        >>> s.setup, s.camera, s.performer, s.replication, s.action, str(s)
        (1, 2, 3, 2, 13, 'S001C002P003R002A013')
    """

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @staticmethod
    def parse(name: str) -> SampleName | None:
        m = _NAME.search(name)
        return SampleName(*(int(g) for g in m.groups())) if m else None

    def __str__(self) -> str:
        return (f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
                f"R{self.replication:03d}A{self.action:03d}")


@dataclass
class Body:
    """One tracked body in one frame of a ``.skeleton`` file.

    Attributes:
        body_id: the Kinect tracking id (a 64-bit integer).
        info: float64 ``(9,)`` the other body fields, in file order: clipedEdges,
            handLeftConfidence, handLeftState, handRightConfidence, handRightState,
            isRestricted, leanX, leanY, trackingState.
        joints: float64 ``(joints, 12)`` per joint x, y, z, depthX, depthY, colorX, colorY,
            orientationW, orientationX, orientationY, orientationZ, trackingState.
    """

    body_id: int
    info: np.ndarray
    joints: np.ndarray


def _count(lines: list[str], k: int, name: str, what: str) -> int:
    """Line ``k`` (0-based) as one non-negative integer."""
    if k >= len(lines):
        raise DataFormatError(name, f"file ends where {what} should be", k + 1)
    fields = lines[k].split()
    count = plain_int(fields[0]) if len(fields) == 1 else None
    if count is None:
        raise DataFormatError(name, f"expected {what} (one integer), found {lines[k][:60]!r}",
                              k + 1)
    return count


def _body_line(lines: list[str], k: int, name: str) -> tuple[int, np.ndarray]:
    if k >= len(lines):
        raise DataFormatError(name, "file ends where a body line (10 values) should be", k + 1)
    fields = lines[k].split()
    if len(fields) != len(BODY_FIELDS):
        raise DataFormatError(name, f"expected a body line of {len(BODY_FIELDS)} values "
                                    f"({' '.join(BODY_FIELDS)}), found {len(fields)}", k + 1)
    values: list[float] = []
    body_id = 0
    for i, tok in enumerate(fields):
        try:
            v = int(tok) if i in _BODY_INTS else float(tok)
        except ValueError:
            kind = "an integer" if i in _BODY_INTS else "a number"
            raise DataFormatError(name, f"{BODY_FIELDS[i]} is {tok[:30]!r}, expected {kind}",
                                  k + 1) from None
        if i == 0:
            body_id = int(v)
        else:
            values.append(float(v))
    return body_id, np.array(values, dtype=np.float64)


def _joint_lines(lines: list[str], k: int, n: int, name: str) -> np.ndarray:
    block = lines[k:k + n]
    width = len(JOINT_FIELDS)
    tokens = " ".join(block).split()
    if len(block) == n and len(tokens) == n * width:
        try:
            arr = np.array(tokens, dtype=np.float64).reshape(n, width)
        except ValueError:
            pass
        else:  # joints end up float32: a larger value would silently become infinite
            check_range(arr, name, lambda r: k + r + 1)
            return arr
    for i in range(n):  # find the offending line
        if k + i >= len(lines):
            raise DataFormatError(name, f"file ends inside a body: joint {i + 1} of {n} missing",
                                  k + i + 1)
        fields = lines[k + i].split()
        if len(fields) != width:
            raise DataFormatError(name, f"expected a joint line of {width} values "
                                        f"({' '.join(JOINT_FIELDS)}), found {len(fields)}",
                                  k + i + 1)
        for j, tok in enumerate(fields):
            try:
                float(tok)
            except ValueError:
                raise DataFormatError(name, f"{JOINT_FIELDS[j]} is {tok[:30]!r}, expected a "
                                            "number", k + i + 1) from None
    raise DataFormatError(name, "could not parse joint values", k + 1)  # pragma: no cover


def read_skeleton(path: str | os.PathLike[str], data: bytes | None = None,
                  joints: int | None = N_JOINTS) -> list[list[Body]]:
    """Parse an NTU RGB+D ``.skeleton`` file.

    Args:
        path: the file (read unless ``data`` is given; always used in error messages).
        data: the file's bytes, when already read (e.g. from a zip archive).
        joints: the joint count every body must have (None: any).

    Returns:
        per frame, its bodies (possibly none).

    Raises:
        DataFormatError: naming the file and line of the first value that does not fit.

    Example:
        >>> text = "1\\n1\\n7 0 1 1 1 1 0 0.1 0.2 2\\n1\\n" + " ".join(["0.5"] * 11) + " 2\\n"
        >>> (body,), = read_skeleton("S001C001P001R001A001.skeleton", text.encode(), joints=1)
        >>> body.body_id, body.info.tolist()[-3:], body.joints.shape
        (7, [0.1, 0.2, 2.0], (1, 12))
    """
    name = os.fspath(path)
    text = decode(Path(path).read_bytes() if data is None else data, name)
    lines = text.splitlines()
    n_frames = _count(lines, 0, name, "the frame count")
    k = 1
    frames: list[list[Body]] = []
    for f in range(n_frames):
        n_bodies = _count(lines, k, name, f"the body count of frame {f + 1} of {n_frames}")
        k += 1
        bodies = []
        for _ in range(n_bodies):
            body_id, info = _body_line(lines, k, name)
            n_joints = _count(lines, k + 1, name, "the joint count")
            if joints is not None and n_joints != joints:
                raise DataFormatError(name, f"joint count {n_joints}, expected {joints}", k + 2)
            values = _joint_lines(lines, k + 2, n_joints, name)
            bodies.append(Body(body_id, info, values))
            k += 2 + n_joints
        frames.append(bodies)
    extra = next((i for i in range(k, len(lines)) if lines[i].strip()), None)
    if extra is not None:
        raise DataFormatError(name, f"more lines after the {n_frames} frame(s) line 1 announces",
                              extra + 1)
    return frames


def _num(v: float) -> str:
    """The shortest text that reads back as the same float64."""
    return repr(float(v))


def write_skeleton(path: str | os.PathLike[str], frames: Sequence[Sequence[Body]]) -> None:
    """Write ``frames`` in the ``.skeleton`` text format (:func:`read_skeleton` reads them
    back exactly: integers as integers, other values with every digit they need)."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for b in bodies:
            if b.info.shape != (len(BODY_FIELDS) - 1,) or b.joints.ndim != 2 or \
                    b.joints.shape[1] != len(JOINT_FIELDS):
                raise ValueError(f"body {b.body_id}: info {b.info.shape} / joints "
                                 f"{b.joints.shape}, expected (9,) / (joints, 12)")
            head = [str(int(b.body_id))] + [
                str(int(v)) if i + 1 in _BODY_INTS else _num(v) for i, v in enumerate(b.info)]
            out.append(" ".join(head))
            out.append(str(len(b.joints)))
            out.extend(" ".join([*map(_num, row[:11]), str(int(row[11]))]) for row in b.joints)
    Path(path).write_text("\n".join(out) + "\n")


def read_missing_list(path: str | os.PathLike[str]) -> set[str]:
    """The sample names (``SsssCcccPpppRrrrAaaa``) in an official missing-skeleton list; its
    header sentence and blank lines are skipped.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "missing.txt"
        >>> _ = p.write_text("2 of the samples ...\\n\\nS001C002P005R002A008\\nS001C002P006R001A008\\n")
        >>> sorted(read_missing_list(p))
        ['S001C002P005R002A008', 'S001C002P006R001A008']
    """
    text = decode(Path(path).read_bytes(), os.fspath(path))
    names = set()
    for line in text.splitlines():
        m = _NAME.fullmatch(line.strip())
        if m:
            names.add(m.group(0))
    return names


def select_bodies(frames: Sequence[Sequence[Body]], bodies: int = 2, min_frames: int = 10,
                  max_spread_ratio: float = 0.8) -> tuple[np.ndarray, list[list[int]]]:
    """The x, y, z of up to ``bodies`` people per frame (see the module docstring).

    Args:
        frames: :func:`read_skeleton` output.
        bodies: slots to fill (1 or 2).
        min_frames: bodyIDs seen in fewer frames are noise (unless nothing else is left).
        max_spread_ratio: bodyIDs whose median x spread / y spread is larger are noise.

    Returns:
        ``(xyz, slots)``: float32 ``(frames, bodies, joints, 3)`` (zeros where a slot is
        empty) and the bodyIDs each slot holds, best first.

    Example:
        >>> def body(i, x): return Body(i, np.zeros(9), np.array([[x, 0, 3] + [0] * 9,
        ...                                                       [x, 1.7, 3] + [0] * 9]))
        >>> frames = [[body(1, 0.0), body(2, 2.0)], [body(2, 2.0), body(1, 0.5)], [body(2, 2.0)]]
        >>> xyz, slots = select_bodies(frames, min_frames=1)
        >>> slots, xyz.shape, xyz[1, 0, 0].tolist()     # body 1 moves, body 2 stands still
        ([[1], [2]], (3, 2, 2, 3), [0.5, 0.0, 3.0])
    """
    if bodies < 1:
        raise ConfigError(f"bodies={bodies!r}: expected 1 or 2")
    seen: dict[int, list[tuple[int, np.ndarray]]] = {}
    n_joints = next((len(b.joints) for f in frames for b in f), 0)
    for t, frame in enumerate(frames):
        for b in frame:
            xyz = b.joints[:, :3]
            if np.isfinite(xyz).all() and xyz.any():  # all-zero bodies are not tracked bodies
                seen.setdefault(b.body_id, []).append((t, xyz))
    out = np.zeros((len(frames), bodies, n_joints, 3), np.float32)
    if not seen:
        return out, [[] for _ in range(bodies)]
    stats = {}
    for bid, obs in seen.items():
        xyz = np.stack([o[1] for o in obs])  # (frames seen, joints, 3)
        spread_x = np.ptp(xyz[:, :, 0], axis=1)
        spread_y = np.ptp(xyz[:, :, 1], axis=1)
        ratio = float(np.median(spread_x / np.maximum(spread_y, 1e-9)))
        energy = float(xyz.var(axis=0).sum())
        stats[bid] = (len(obs), ratio, energy)
    keep = [b for b, (n, r, _) in stats.items() if n >= min_frames and r <= max_spread_ratio]
    order = sorted(keep or list(stats), key=lambda b: (-stats[b][2], b))
    slots: list[list[int]] = []
    used: list[set[int]] = []
    for bid in order:
        frames_of = {t for t, _ in seen[bid]}
        for s, taken in enumerate(used):
            if not taken & frames_of:
                slots[s].append(bid)
                taken |= frames_of
                break
        else:
            if len(slots) < bodies:
                slots.append([bid])
                used.append(set(frames_of))
    for s, ids in enumerate(slots):
        for bid in ids:
            for t, xyz in seen[bid]:
                out[t, s] = xyz
    return out, slots + [[] for _ in range(bodies - len(slots))]


def trim_empty(xyz: np.ndarray) -> np.ndarray:
    """``(T, bodies, joints, 3)`` without the leading and trailing frames where every body is
    zeros.

    Example:
        >>> x = np.zeros((4, 1, 1, 3)); x[1:3] = 1
        >>> trim_empty(x).shape
        (2, 1, 1, 3)
    """
    busy = np.flatnonzero(xyz.reshape(len(xyz), -1).any(axis=1))
    if not len(busy):
        return xyz[:0]
    return xyz[busy[0]:busy[-1] + 1]


def split_of(sample: SampleName, split: str, version: int = 60) -> str:
    """``"train"`` or ``"test"``: the sample's side of an official protocol.

    Example:
        >>> s = SampleName.parse("S002C001P045R001A001")
        >>> split_of(s, "xsub", 60), split_of(s, "xsub", 120), split_of(s, "xview"), split_of(s, "xset", 120)
        ('test', 'train', 'test', 'train')
    """
    protocol = SPLITS.get(split)
    if protocol is None:
        raise ConfigError(f"ntu: split={split!r}, expected one of {sorted(SPLITS)}")
    if protocol == "cross-subject":
        train = sample.performer in (XSUB60_TRAIN if version == 60 else XSUB120_TRAIN)
    elif protocol == "cross-view":
        train = sample.camera in XVIEW_TRAIN_CAMERAS
    else:
        if version != 120:
            raise ConfigError("ntu: the cross-setup split is defined for version=120")
        train = sample.setup % 2 == 0
    return "train" if train else "test"


def _members(src: Path) -> Iterator[tuple[str, str, bytes]]:
    """``(sample name, name for errors, bytes)`` of each ``.skeleton`` file in a folder
    (searched recursively) or zip archive."""
    if src.is_file():
        with open_zip(src, src) as zf:
            for n in sorted(zf.namelist()):
                if n.endswith(".skeleton"):
                    yield Path(n).stem, f"{src}:{n}", read_member(zf, n, f"{src}:{n}")
        return
    for p in sorted(src.rglob("*.skeleton")):
        yield p.stem, str(p), p.read_bytes()


def parse_source(src: Path, bodies: int = 2, missing: frozenset[str] = frozenset()
                 ) -> dict[str, np.ndarray]:
    """Every sample of a folder or zip archive: concatenated ``frames`` float32
    ``(sum of T, bodies, 25, 3)``, their ``lengths`` and sample ``names`` (no caching)."""
    seqs: list[np.ndarray] = []
    names: list[str] = []
    skipped = {"listed": 0, "no body": 0, "misnamed": 0}
    for stem, name, data in _members(src):
        sample = SampleName.parse(stem)
        if sample is None or str(sample) != stem:
            skipped["misnamed"] += 1
            continue
        if stem in missing:
            skipped["listed"] += 1
            continue
        xyz, _ = select_bodies(read_skeleton(name, data), bodies)
        xyz = trim_empty(xyz)
        if not len(xyz):
            skipped["no body"] += 1
            continue
        seqs.append(xyz)
        names.append(stem)
    notes = {k: v for k, v in skipped.items() if v}
    if notes:
        log.warning("ntu %s: skipped %s", src.name, ", ".join(
            f"{v} {'in the missing-skeleton list' if k == 'listed' else k}"
            for k, v in notes.items()))
    if not seqs:
        raise DataFormatError(src, "no usable SsssCcccPpppRrrrAaaa.skeleton files")
    return {"frames": np.concatenate(seqs), "lengths": np.array([len(s) for s in seqs]),
            "names": np.array(names, dtype=str)}


def _save(parsed: dict[str, np.ndarray], f: Any) -> None:
    np.savez(f, frames=parsed["frames"], lengths=parsed["lengths"], names=parsed["names"])


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in ("frames", "lengths", "names")}


def find_sources(root: Path) -> list[Path]:
    """The skeleton archives / folders under ``root`` (or ``root/ntu``).

    Raises:
        DatasetNotFoundError: naming the places looked at.
    """
    looked = []
    for base in (root / "ntu", root):
        found = [base / a for a in ARCHIVES if (base / a).is_file()]
        found += [base / d for d in FOLDERS if (base / d).is_dir()]
        if not found and base.is_dir() and any(base.glob("*.skeleton")):
            found = [base]
        if found:
            return found
        looked.append(str(base))
    raise DatasetNotFoundError(
        f"ntu: no skeleton data ({' or '.join(ARCHIVES)}, or a folder of .skeleton files "
        f"such as {FOLDERS[0]}/) in {', '.join(looked)}; NTU RGB+D is distributed on request "
        f"({HOME_URL})")


def _missing_names(missing_list: str | list[str] | None, sources: list[Path]) -> set[str]:
    if missing_list is None:
        bases = {s.parent if (s.is_file() or s.name in FOLDERS) else s for s in sources}
        paths = [b / n for b in sorted(bases) for n in MISSING_LISTS if (b / n).is_file()]
        if not paths:
            log.warning("ntu: no missing-skeleton list (%s) next to the data: the listed "
                        "samples are not skipped (set data.options.missing_list)",
                        MISSING_LISTS[1])
    else:
        paths = [Path(p).expanduser() for p in
                 ([missing_list] if isinstance(missing_list, str) else missing_list)]
    names: set[str] = set()
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"ntu: missing_list {p} is not a file")
        names |= read_missing_list(p)
    return names


@DATASETS.register(
    "ntu",
    description="NTU RGB+D 60 / 120 Kinect v2 skeletons (ntu25, 3D, 2 bodies, 30 Hz); "
    "cross-subject, cross-view or cross-setup splits",
    kind="skeleton",
)
def load_ntu(data_dir: str | os.PathLike[str] | None = None, version: int = 60,
             split: str = "cross-subject", length: int = 64, policy: str = "resample",
             bodies: int = 2, missing_list: str | list[str] | None = None,
             use_cache: bool = True) -> WindowedDataset:
    """Load NTU RGB+D skeletons as one ``(length, bodies * 25 * 3)`` window per sample.

    Args:
        data_dir: folder holding the skeleton zip(s) or ``nturgb+d_skeletons/`` (directly or
            in ``ntu/``); else ``HARKIT_DATA_DIR``. No automatic download.
        version: 60 or 120.
        split: ``cross-subject`` / ``xsub``, ``cross-view`` / ``xview`` or ``cross-setup`` /
            ``xset`` (120 only).
        length, policy: frames per window and how samples get there (``resample`` the whole
            sample, or ``pad`` with a ``valid`` channel).
        bodies: 1 or 2 body slots (module docstring).
        missing_list: the official missing-skeleton list file(s) (default: found next to the
            data; ``[]`` skips none).
        use_cache: keep the parsed samples in the harkit cache.

    Returns:
        a :class:`~harkit.data.dataset.WindowedDataset` (x, y, z in metres, layout ``ntu25``)
        whose window subjects are the performers.

    Example:
        >>> ds = load_ntu("/data", version=60, split="xview")          # doctest: +SKIP
        >>> ds.splits["train"].X.shape[1:], ds.n_classes               # doctest: +SKIP
        ((64, 150), 60)
    """
    if version not in (60, 120):
        raise ConfigError(f"ntu: version={version!r}, expected 60 or 120")
    if bodies not in (1, 2):
        raise ConfigError(f"ntu: bodies={bodies!r}, expected 1 or 2")
    check_choice("ntu", "policy", policy, LENGTH_POLICIES)
    protocol = SPLITS.get(split)
    if protocol is None:
        raise ConfigError(f"ntu: split={split!r}, expected one of {sorted(SPLITS)}")
    if protocol == "cross-setup" and version != 120:
        raise ConfigError("ntu: split='cross-setup' is defined for version=120")
    location = configured_data_dir(data_dir)
    if location is None:  # never the cache: it is for downloads, and this is no download
        raise DatasetNotFoundError(f"ntu: NTU RGB+D is distributed on request ({HOME_URL}); "
                                   "point --data-dir or HARKIT_DATA_DIR at the skeleton files")
    sources = find_sources(Path(location).expanduser())
    missing = frozenset(_missing_names(missing_list, sources))
    key = hashlib.sha256("\n".join(sorted(missing)).encode()).hexdigest()[:8]
    seqs: list[np.ndarray] = []
    samples: list[SampleName] = []
    have: set[str] = set()
    for src in sources:
        parsed = cached_parse(f"ntu-b{bodies}-{key}", CACHE_VERSION, src,
                              partial(parse_source, bodies=bodies, missing=missing), _save,
                              _load, use_cache)
        bounds = np.concatenate([[0], np.cumsum(parsed["lengths"])])
        for i, n in enumerate(parsed["names"].tolist()):
            sample = SampleName.parse(n)
            if sample is None or n in have:
                continue
            if version == 60 and (sample.setup > 17 or sample.action > 60):
                continue
            have.add(n)
            seqs.append(parsed["frames"][bounds[i]:bounds[i + 1]])
            samples.append(sample)
    if not samples:
        raise DataFormatError(sources[0], f"no NTU RGB+D {version} samples (setups 1-"
                                          f"{17 if version == 60 else 32})")
    sides = np.array([split_of(s, protocol, version) for s in samples])
    y = np.array([s.action - 1 for s in samples], np.int64)
    subjects = np.array([s.performer for s in samples], np.int64)
    splits = split_sequences(seqs, y, subjects, sides == "test")
    info = SkeletonInfo("ntu25", bodies=bodies, dims=3, dim_names=("x", "y", "z"))
    return skeleton_dataset("ntu", CLASSES[:version], info, splits, length, policy, RATE,
                            f"NTU RGB+D {version}, {protocol} split, {len(samples)} samples, "
                            f"{bodies} body slot(s), metres in camera coordinates")
