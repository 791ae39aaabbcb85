#!/usr/bin/env python3
"""Writes small, valid .gopclntab tables in the Go 1.16, 1.18 and 1.20 formats (go116.bin, go118.bin,
go120.bin), and ELF files without section headers holding the 1.18 and 1.20 ones (elf-go118-noshdr,
elf-go120-noshdr), into the directory given: the fuzz seeds of fuzz_gopclntab and the unit test's
fixtures for the formats the installed Go cannot write. Layouts from Go's runtime/symtab.go and
debug/gosym. (elf-go118 beside them is a gcc-built static seed with the table added by objcopy.)

Each table is meant to sit at address 0x400000 with text at 0x401000, and carries its own inline tree
(FUNCDATA offsets count from the table's start, so gofunc = 0x400000):
  main.outer [text, text+0x40): a.go line 10 up to +0x10, then line 20; from +0x20 on, file b.go and
    main.inner inlined there, called from +0x08 (a.go:10)
  main.inner [text+0x40, text+0x80): b.go line 30
"""
import os
import struct
import sys

VADDR, TEXT = 0x400000, 0x401000
MAGIC = {116: 0xFFFFFFFA, 118: 0xFFFFFFF0, 120: 0xFFFFFFF1}
NAMES = b"\0main.outer\0main.inner\0"
OUTER_NAME, INNER_NAME = 1, 12
FILES = b"/src/a.go\0/src/b.go\0"
CUTAB = struct.pack("<2I", 0, 10)


def zigzag(v):
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pcvalue(pairs):
    """[(value, pc bytes)] from the function's entry, starting from the value -1."""
    out, prev = bytearray(), -1
    for value, span in pairs:
        out += varint(zigzag(value - prev)) + varint(span)
        prev = value
    return bytes(out + b"\0")


def pctab():
    tabs = {"outer_file": [(0, 0x20), (1, 0x20)], "outer_line": [(10, 0x10), (20, 0x30)],
            "outer_inl": [(-1, 0x20), (0, 0x20)], "inner_file": [(0, 0x40)], "inner_line": [(30, 0x40)]}
    data, offs = bytearray(b"\0"), {}  # offset 0 means "no table"
    for name, pairs in tabs.items():
        offs[name] = len(data)
        data += pcvalue(pairs)
    return bytes(data), offs


def func_record(ver, entry, name, pcfile, pcln, cu, pcdata, funcdata, record_vaddr):
    head = struct.pack("<Q", TEXT + entry) if ver == 116 else struct.pack("<I", entry)
    head += struct.pack("<iiIIIIII", name, 0, 0, 0, pcfile, pcln, len(pcdata), cu)
    if ver == 120:
        head += struct.pack("<i", 1)  # startLine
    head += bytes([0, 0, 0, len(funcdata)])
    head += b"".join(struct.pack("<I", p) for p in pcdata)
    if ver == 116:
        if (record_vaddr + len(head)) & 4:
            head += b"\0" * 4
        return head + b"".join(struct.pack("<Q", f) for f in funcdata)
    return head + b"".join(struct.pack("<I", f) for f in funcdata)


def inline_entry(ver):
    if ver == 120:
        return struct.pack("<B3xiii", 0, INNER_NAME, 0x08, 29)
    return struct.pack("<hBxiiii", -1, 0, 0, 10, INNER_NAME, 0x08)


def table(ver):
    words = 7 if ver == 116 else 8
    hdr_len = 8 + 8 * words
    tab, offs = pctab()
    funcname = hdr_len
    cu = funcname + len(NAMES)
    filetab = cu + len(CUTAB)
    pct = filetab + len(FILES)
    pcln = (pct + len(tab) + 7) & ~7
    field = 8 if ver == 116 else 4
    functab_len = 5 * field
    outer_off = functab_len
    # The inline tree goes after both records; sizes are known once the records are built, so build
    # them twice: once to measure, once with the tree's real address.
    tree = 0
    for _ in range(2):
        none = 0 if ver == 116 else 0xFFFFFFFF
        tree_ref = (VADDR + tree) if ver == 116 else tree
        outer = func_record(ver, 0, OUTER_NAME, offs["outer_file"], offs["outer_line"], 0,
                            [0, 0, offs["outer_inl"]], [none, none, none, tree_ref], VADDR + pcln + outer_off)
        inner_off = (outer_off + len(outer) + 3) & ~3
        inner = func_record(ver, 0x40, INNER_NAME, offs["inner_file"], offs["inner_line"], 1, [], [],
                            VADDR + pcln + inner_off)
        tree = (pcln + inner_off + len(inner) + 7) & ~7
    pack = (lambda v: struct.pack("<Q", v)) if field == 8 else (lambda v: struct.pack("<I", v))
    base = TEXT if ver == 116 else 0
    functab = pack(base) + pack(outer_off) + pack(base + 0x40) + pack(inner_off) + pack(base + 0x80)
    header = struct.pack("<IBBBB", MAGIC[ver], 0, 0, 1, 8)
    fields = [2, 2] + ([] if ver == 116 else [TEXT]) + [funcname, cu, filetab, pct, pcln]
    header += b"".join(struct.pack("<Q", v) for v in fields)
    out = bytearray(header + NAMES + CUTAB + FILES + tab)
    out += b"\0" * (pcln - len(out))
    out += functab + outer
    out += b"\0" * (pcln + inner_off - len(out))
    out += inner
    out += b"\0" * (tree - len(out))
    return bytes(out + inline_entry(ver))


def elf_without_sections(ver):
    """An ELF executable with no section headers and one PT_LOAD mapping the whole file at 0x400000:
    a Go build-id note, the table (at an 8-aligned offset, its own address being its gofunc) and a
    moduledata record pointing at it (gofunc in word 38 for 1.18, 40 for 1.20)."""
    ehdr_len, phdr_len = 64, 56
    note = struct.pack("<III", 4, 4, 4) + b"Go\0\0" + b"seed"
    note_off = ehdr_len + 2 * phdr_len
    tab = table(ver)
    tab_off = (note_off + len(note) + 7) & ~7
    tab_vaddr = VADDR + tab_off
    # Inline-tree offsets in the table count from its start: gofunc is its address.
    words = [0] * 48
    words[0], words[22] = tab_vaddr, TEXT
    words[38 if ver == 118 else 40] = tab_vaddr
    md_off = (tab_off + len(tab) + 7) & ~7
    size = md_off + 8 * len(words)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, TEXT, ehdr_len, 0, 0, ehdr_len, phdr_len, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 4, 0, VADDR, VADDR, size, size, 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, VADDR + note_off, VADDR + note_off, len(note), len(note), 4)
    out = bytearray(ehdr + load + pnote + note)
    out += b"\0" * (tab_off - len(out)) + tab
    out += b"\0" * (md_off - len(out))
    out += b"".join(struct.pack("<Q", w) for w in words)
    return bytes(out)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(outdir, exist_ok=True)
    for ver in (116, 118, 120):
        with open(os.path.join(outdir, "go%d.bin" % ver), "wb") as f:
            f.write(table(ver))
    for ver in (118, 120):
        with open(os.path.join(outdir, "elf-go%d-noshdr" % ver), "wb") as f:
            f.write(elf_without_sections(ver))


if __name__ == "__main__":
    main()
