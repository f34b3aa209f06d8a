"""A safetensors file of little-endian f32 tensors (standard library only; the trainer and its
tests share it). The file appears only when complete (tmp + rename)."""
import json
import os
import struct


def write_f32_safetensors(path, tensors):
    """tensors: {name: (shape, data)} with `data` the raw little-endian f32 bytes."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        shape, data = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
