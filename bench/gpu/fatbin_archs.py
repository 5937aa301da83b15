#!/usr/bin/env python3
"""Lists the GPU code in a shared library's fatbinary (what `cuobjdump --list-elf --list-ptx` shows), for machines
without cuobjdump: the .nv_fatbin section holds fatbin containers (magic 0xBA55ED50), each a list of entries whose
header names the kind (1 = PTX, 2 = cubin ELF) and the SM architecture. Usage: fatbin_archs.py LIB.so [--require sm_90]
Exit 1 when a --require'd SASS architecture is missing. Checked against our own kernels, built for known archs."""
import struct
import sys


def section(path, name):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise SystemExit(f'{path}: not a 64-bit ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    def sh(i):
        return struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize)
    stroff = sh(shstrndx)[4]
    for i in range(shnum):
        h = sh(i)
        end = data.index(b'\0', stroff + h[0])
        if data[stroff + h[0]:end].decode() == name:
            return data[h[4]:h[4] + h[5]]
    return b''


def entries(fatbin):
    pos = 0
    while pos + 16 <= len(fatbin):
        magic, version, hsize, size = struct.unpack_from('<IHHQ', fatbin, pos)
        if magic != 0xBA55ED50:
            pos += 8   # containers are 8-byte aligned; skip padding
            continue
        p, end = pos + hsize, pos + hsize + size
        while p + 64 <= end:
            kind, _, ehsize, esize = struct.unpack_from('<HHIQ', fatbin, p)
            arch, = struct.unpack_from('<I', fatbin, p + 28)
            if ehsize == 0:
                break
            yield ('ptx' if kind == 1 else 'elf' if kind == 2 else f'kind{kind}'), arch
            p += ehsize + esize
        pos = end


def main():
    lib = sys.argv[1]
    need = [a.replace('sm_', '') for a in sys.argv[3::2]] if '--require' in sys.argv else []
    found = {}
    for kind, arch in entries(section(lib, '.nv_fatbin')):
        found[(kind, arch)] = found.get((kind, arch), 0) + 1
    for (kind, arch), n in sorted(found.items()):
        print(f'{kind:4} sm_{arch:<4} {n} entries')
    sass = {str(a) for (k, a) in found if k == 'elf'}
    missing = [a for a in need if a not in sass]
    if missing:
        print(f'{lib}: no SASS for sm_{", sm_".join(missing)}', file=sys.stderr)
        sys.exit(1)


main()
