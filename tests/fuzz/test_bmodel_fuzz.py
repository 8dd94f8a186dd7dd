"""Mutation fuzzing of the bmodel reader (and, for a sample, of combine): every damaged file must either read
cleanly or raise BModelError; nothing else may escape (no IndexError, struct.error, UnicodeDecodeError, ...).

The number of variants is ``BMFLEET_FUZZ_COUNT`` (default 10000) and the seed ``BMFLEET_FUZZ_SEED`` (default
0); a failure prints the seed, the variant index and the mutation, so it can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bmfleet.bmodel import BModelError, combine, encode, format_text, from_file, load_bytes, synth, to_json
from bmfleet.bmodel.codec import walk_binaries
from bmfleet.bmodel.synth import StageSpec

COUNT = int(os.environ.get("BMFLEET_FUZZ_COUNT", "10000"))
SEED = int(os.environ.get("BMFLEET_FUZZ_SEED", "0"))
COMBINE_EVERY = 40  # also push every 40th variant through combine
TIME_LIMIT = float(os.environ.get("BMFLEET_FUZZ_SECONDS", "120"))

INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def seed_files(tmp: Path) -> list[bytes]:
    """Small valid files of different shapes (packed layout keeps them a few KB)."""
    k = b"kernel" * 40
    b4 = synth.classifier("resnet", 4, kernel=k, align=1, in_dtype=2, in_scale=0.02, in_zero_point=3)
    b1 = synth.classifier("resnet", 1, kernel=k, align=1, in_dtype=2, in_scale=0.02, in_zero_point=3)
    y = synth.model(
        [("yolo", [StageSpec([("images", [1, 3, 8, 8]), ("mask", [1, 8])], [("boxes", [1, 4]), ("scores", [1])])])],
        chip="BM1684X",
        kernel=k,
        kernel_mode=0,
        align=1,
    )
    paths = []
    for name, data in (("b4", b4), ("b1", b1), ("y", y)):
        p = tmp / f"{name}.bmodel"
        p.write_bytes(data)
        paths.append(p)
    out = tmp / "combined.bmodel"
    combine(paths, out, align=1)
    bm1684 = synth.classifier("old", 2, chip="BM1684", kernel_mode=-4096, align=1)
    return [b4, y, out.read_bytes(), bm1684, synth.classifier("aligned", 2, kernel=b"k" * 10)]


def fb_range(data: bytes) -> tuple[int, int]:
    hs, fs = struct.unpack_from("<II", data, 4)
    return hs, hs + fs


def bit_flips(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    lo, hi = fb_range(data)
    n = rng.choice([1, 1, 2, 3, 8])
    spots = []
    for _ in range(n):
        pos = rng.randrange(lo, hi) if rng.random() < 0.85 else rng.randrange(len(b))
        bit = rng.randrange(8)
        b[pos] ^= 1 << bit
        spots.append(f"{pos}.{bit}")
    return bytes(b), f"flip {','.join(spots)}"


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    n = rng.choice([rng.randrange(len(data)), rng.randrange(80), len(data) - rng.randrange(1, 64)])
    return data[: max(0, n)], f"truncate {n}"


def header_field(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    word = rng.choice([0, 1, 1, 2, 2, 3, 3, rng.randrange(4, 16)])
    old = struct.unpack_from("<I", b, 4 * word)[0]
    new = (
        rng.choice(
            [*INTERESTING_U32, len(data), old + rng.randint(-16, 16), old * 2, rng.randrange(2**32), 64, 0xFF55AAFF]
        )
        % 2**32
    )
    struct.pack_into("<I", b, 4 * word, new)
    return bytes(b), f"header word {word} {old}->{new}"


def offsets(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Overwrite something that looks like an offset: uoffsets/soffsets/lengths (4-aligned u32),
    vtable entries (2-aligned u16), Binary fields (8-aligned u64)."""
    b = bytearray(data)
    lo, hi = fb_range(data)
    kind = rng.choice(["u32", "u32", "u16", "u64"])
    size = {"u32": 4, "u16": 2, "u64": 8}[kind]
    if hi - lo < size:
        return bytes(b), "no-op"
    pos = lo + rng.randrange((hi - lo - size) // size + 1) * size
    fmt = {"u32": "<I", "u16": "<H", "u64": "<Q"}[kind]
    old = struct.unpack_from(fmt, b, pos)[0]
    lim = 2 ** (8 * size)
    new = (
        rng.choice(
            [*INTERESTING_U32, old + 4, old - 4, old + rng.randint(-64, 64), hi - lo, (hi - lo) * 2, rng.randrange(lim)]
        )
        % lim
    )
    struct.pack_into(fmt, b, pos, new)
    return bytes(b), f"{kind} at {pos} {old}->{new}"


def splice(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    lo, hi = fb_range(data)
    pos = rng.randrange(lo, hi)
    n = rng.randint(1, 16)
    if rng.random() < 0.5:
        return data[:pos] + bytes(rng.randrange(256) for _ in range(n)) + data[pos:], f"insert {n} at {pos}"
    return data[:pos] + data[pos + n :], f"delete {n} at {pos}"


MUTATORS: list[tuple[str, Callable[[random.Random, bytes], tuple[bytes, str]], int]] = [
    ("bitflip", bit_flips, 40),
    ("truncate", truncate, 10),
    ("header", header_field, 15),
    ("offset", offsets, 30),
    ("splice", splice, 5),
]


def exercise(data: bytes) -> None:
    """Everything a caller may do with a file that verified."""
    with load_bytes(data, "fuzz.bmodel") as f:
        m = from_file(f)
        format_text(m)
        json.dumps(to_json(m))
        for _, b, _ in walk_binaries(f.root):
            assert len(f.blob(b)) == b.size
        encode(f.root)


def test_mutated_files_only_raise_bmodel_error(tmp_path: Path) -> None:
    seeds = seed_files(tmp_path)
    for s in seeds:
        exercise(s)  # the seeds themselves are valid
    rng = random.Random(SEED)
    names = [m[0] for m in MUTATORS]
    weights = [m[2] for m in MUTATORS]
    stats: Counter[str] = Counter()
    partner = tmp_path / "partner.bmodel"
    partner.write_bytes(seeds[0])
    t0 = time.monotonic()
    for i in range(COUNT):
        base = seeds[i % len(seeds)]
        name = rng.choices(names, weights)[0]
        mutate = dict((m[0], m[1]) for m in MUTATORS)[name]
        data, what = mutate(rng, base)
        if rng.random() < 0.1:  # sometimes stack a second mutation
            data, what2 = mutate(rng, data) if len(data) >= 64 else (data, "")
            what = f"{what}; {what2}"
        try:
            exercise(data)
            stats[f"{name}:ok"] += 1
        except BModelError as e:
            assert str(e), "empty error message"
            stats[f"{name}:rejected"] += 1
        except Exception as e:  # pragma: no cover - this is the failure being searched for
            pytest.fail(f"seed {SEED} variant {i} ({what}) on seed file {i % len(seeds)}: {type(e).__name__}: {e}")
        if i % COMBINE_EVERY == 0:
            victim = tmp_path / "victim.bmodel"
            victim.write_bytes(data)
            try:
                combine([partner, victim], tmp_path / "out.bmodel", align=1)
                stats["combine:ok"] += 1
            except BModelError:
                stats["combine:rejected"] += 1
            except Exception as e:  # pragma: no cover
                pytest.fail(f"combine: seed {SEED} variant {i} ({what}): {type(e).__name__}: {e}")
        if time.monotonic() - t0 > TIME_LIMIT:
            pytest.fail(f"fuzzing took longer than {TIME_LIMIT}s after {i + 1} variants: the reader is too slow")
    elapsed = time.monotonic() - t0
    total = sum(v for k, v in stats.items() if not k.startswith("combine"))
    assert total == COUNT
    # the mutations must actually reach the verifier's checks, not just the header
    assert stats["offset:rejected"] > 0 and stats["bitflip:rejected"] > 0 and stats["header:rejected"] > 0
    print(f"\n{COUNT} variants in {elapsed:.1f}s: {dict(sorted(stats.items()))}")
