#!/usr/bin/env python3
"""Reads copetrain checkpoints (the format of src/checkpoint.h) for cross-checks in Python.

    magic "COPECKPT", u32 version, u32 section count, then per section:
    u32 name length, name, u64 payload size, u32 zlib CRC32 of the payload, payload (little-endian).

    import checkpoint
    sections = checkpoint.read("runs/x/ckpt_00001000.bin")   # {name: bytes}, CRCs checked
    checkpoint.write("copy.bin", sections)                    # the same format back
    config = checkpoint.config(sections)                      # the "config" section as a dict
    w = checkpoint.as_float32(sections["params"])             # numpy array (or array('f') without numpy)

As a program it lists the sections: python3 scripts/checkpoint.py FILE [--config] [--dump SECTION]
(--dump prints one section's bytes as hex, e.g. to compare the parameters of two runs bit for bit).
Only the standard library is needed; numpy is used by as_float32 when it is installed.
"""
import json
import struct
import sys
import zlib

MAGIC = b"COPECKPT"
VERSION = 1
NAME_MAX_LEN = 1024  # as in src/checkpoint.c


class CheckpointError(Exception):
    pass


def read(path, verify=True):
    """Returns {name: bytes} in file order; raises CheckpointError naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    if len(data) < 8 or data[:8] != MAGIC:
        raise CheckpointError(f'checkpoint {path}: not a copetrain checkpoint (bad magic; expected "COPECKPT")')
    if len(data) < 16:
        raise CheckpointError(f"checkpoint {path}: truncated in the file header ({len(data)} bytes)")
    version, count = struct.unpack_from("<II", data, 8)
    if version != VERSION:
        raise CheckpointError(
            f"checkpoint {path}: unsupported format version {version} (this reader reads version {VERSION})")
    pos, out = 16, {}
    for k in range(count):
        if len(data) - pos < 4:
            raise CheckpointError(f"checkpoint {path}: truncated in the header of section #{k}")
        (nlen,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if nlen == 0 or nlen > NAME_MAX_LEN:
            raise CheckpointError(f"checkpoint {path}: corrupt: section #{k} has a name length of {nlen}")
        if len(data) - pos < nlen:
            raise CheckpointError(f"checkpoint {path}: truncated in the name of section #{k}")
        name = data[pos:pos + nlen].decode("utf-8", errors="replace")
        pos += nlen
        if len(data) - pos < 12:
            raise CheckpointError(f"checkpoint {path}: truncated in section '{name}' (its size and CRC are cut off)")
        size, crc = struct.unpack_from("<QI", data, pos)
        pos += 12
        if size > len(data) - pos:
            raise CheckpointError(f"checkpoint {path}: truncated in section '{name}' "
                                  f"({size} payload bytes expected, {len(data) - pos} left in the file)")
        payload = data[pos:pos + size]
        pos += size
        if verify and zlib.crc32(payload) != crc:
            raise CheckpointError(f"checkpoint {path}: CRC mismatch in section '{name}' "
                                  f"(stored {crc:08x}, computed {zlib.crc32(payload):08x}): the file is corrupt")
        if name in out:
            raise CheckpointError(f"checkpoint {path}: corrupt: section '{name}' appears twice")
        out[name] = payload
    if pos != len(data):
        raise CheckpointError(f"checkpoint {path}: corrupt: {len(data) - pos} unexpected bytes after the last section")
    return out


def write(path, sections):
    """Writes {name: bytes} (in the dict's order) as a checkpoint, CRCs included: tests use it to
    make checkpoints that are well-formed but hold what ./train never writes (e.g. a NaN)."""
    out = [MAGIC, struct.pack("<II", VERSION, len(sections))]
    for name, payload in sections.items():
        raw = name.encode()
        out += [struct.pack("<I", len(raw)), raw, struct.pack("<QI", len(payload), zlib.crc32(payload)), payload]
    with open(path, "wb") as f:
        f.write(b"".join(out))


def as_float32(payload):
    """A section's bytes as float32 values (little-endian): a numpy array if numpy is there."""
    if len(payload) % 4:
        raise ValueError(f"{len(payload)} bytes is not a whole number of float32 values")
    try:
        import numpy as np
        return np.frombuffer(payload, dtype="<f4")
    except ImportError:
        import array
        a = array.array("f")
        a.frombytes(payload)
        if sys.byteorder != "little":
            a.byteswap()
        return a


def config(sections):
    """The "config" section (the resolved config as JSON text) as a dict."""
    return json.loads(sections["config"].decode("utf-8"))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    try:
        sections = read(argv[1])
    except CheckpointError as e:
        print(e, file=sys.stderr)
        return 1
    if "--dump" in argv[2:]:
        name = argv[argv.index("--dump") + 1] if argv.index("--dump") + 1 < len(argv) else ""
        if name not in sections:
            print(f"checkpoint {argv[1]}: no section '{name}'", file=sys.stderr)
            return 1
        print(sections[name].hex())
        return 0
    for name, payload in sections.items():
        print(f"{name:32s} {len(payload):>14d} bytes  crc {zlib.crc32(payload):08x}")
    if "--config" in argv[2:] and "config" in sections:
        print(sections["config"].decode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
