#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Make good and hostile archives for dm2's unpack/fetch tests.

    make-archive.py KIND OUT [ARG]

KIND is one of the names in KINDS below. OUT's extension picks the format: .tar, .tar.gz,
.tar.xz, .tar.bz2, .tar.zst (tar piped through the zstd program) or .zip. ARG is a directory
for "dir" (archived below a top-level directory named after it), a marker string for the
hostile kinds (used in every name meant to land outside the tree), or a count for "many".
"""
import io
import os
import subprocess
import sys
import tarfile
import zipfile


def reg(name, data=b"x\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    return ti, data


def special(name, type_, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, None


def d(name):
    return special(name, tarfile.DIRTYPE, mode=0o755)


def symlink(name, target):
    return special(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name, target):
    return special(name, tarfile.LNKTYPE, linkname=target, mode=0o644)


def good(_):
    return [
        d("proj-1.0/"),
        reg("proj-1.0/Makefile", b"obj-m += hello.o\n"),
        reg("proj-1.0/hello.c", b"int x;\n"),
        reg("proj-1.0/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        d("proj-1.0/sub/"),
        reg("proj-1.0/sub/a.h", b"#define A 1\n"),
        symlink("proj-1.0/link.h", "sub/a.h"),
        hardlink("proj-1.0/hello-copy.c", "proj-1.0/hello.c"),
    ]


KINDS = {
    "good": good,
    "two-top": lambda m: [reg("a.c"), reg("b.c")],
    "absolute": lambda m: [reg("proj/ok.c"), reg(f"/tmp/{m}-abs")],
    "dotdot": lambda m: [reg("proj/ok.c"), reg(f"proj/../../{m}-dotdot")],
    "symlink-escape": lambda m: [reg("proj/ok.c"), symlink("proj/evil", f"../../{m}-sym")],
    "symlink-absolute": lambda m: [reg("proj/ok.c"), symlink("proj/evil", f"/tmp/{m}-symabs")],
    "symlink-chain": lambda m: [
        reg("proj/ok.c"),
        reg("top.c"),  # two top-level entries: nothing is stripped
        symlink("proj/up", ".."),
        symlink("proj/evil", f"up/../{m}-chain"),
    ],
    "symlink-top-escape": lambda m: [
        reg("proj/ok.c"),
        symlink("proj/evil", ".."),  # inside the archive, outside once "proj/" is stripped
    ],
    "through-symlink": lambda m: [
        d("proj/sub/"),
        symlink("proj/l", "sub"),
        reg(f"proj/l/{m}-through"),
    ],
    "hardlink-escape": lambda m: [reg("proj/ok.c"), hardlink("proj/evil", "../../etc/passwd")],
    "hardlink-missing": lambda m: [reg("proj/ok.c"), hardlink("proj/evil", "/etc/passwd")],
    "device": lambda m: [
        reg("proj/ok.c"),
        special(f"proj/{m}-dev", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
    ],
    "fifo": lambda m: [reg("proj/ok.c"), special(f"proj/{m}-fifo", tarfile.FIFOTYPE, mode=0o644)],
    "setuid": lambda m: [
        reg("proj/suid", b"#!/bin/sh\n", 0o6755),
        special("proj/sticky/", tarfile.DIRTYPE, mode=0o1777),
    ],
    "many": lambda m: [reg(f"proj/f{i}.c") for i in range(int(m))],
    "big": lambda m: [reg("proj/big.bin", b"\0" * int(m))],
}


def tar_bytes(members, compression=""):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w" + (":" + compression if compression else ""),
                      format=tarfile.GNU_FORMAT) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def dir_members(path):
    top = os.path.basename(os.path.normpath(path))
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        rel = os.path.relpath(root, path)
        base = top if rel == "." else f"{top}/{rel}"
        out.append(d(base + "/"))
        for f in sorted(files) + [x for x in dirs if os.path.islink(os.path.join(root, x))]:
            p = os.path.join(root, f)
            st = os.lstat(p)
            if os.path.islink(p):
                out.append(symlink(f"{base}/{f}", os.readlink(p)))
            else:
                with open(p, "rb") as fh:
                    out.append(reg(f"{base}/{f}", fh.read(), st.st_mode & 0o777))
    return out


def write_zip(members, out):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for ti, data in members:
            zi = zipfile.ZipInfo(ti.name)
            if ti.type == tarfile.DIRTYPE:
                zi.external_attr = (0o40755 << 16) | 0x10
                z.writestr(zi, b"")
            elif ti.type == tarfile.SYMTYPE:
                zi.external_attr = 0o120777 << 16
                z.writestr(zi, ti.linkname)
            elif ti.type == tarfile.REGTYPE:
                zi.external_attr = (0o100000 | ti.mode) << 16
                z.writestr(zi, data)
            else:
                raise SystemExit(f"cannot put {ti.name} in a zip")


def main():
    kind, out = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else "dm2evil"
    members = dir_members(arg) if kind == "dir" else KINDS[kind](arg)
    if out.endswith(".zip"):
        if kind == "good":
            members = [m for m in members if m[0].type != tarfile.LNKTYPE]
        write_zip(members, out)
        return
    if out.endswith(".tar.zst"):
        data = subprocess.run(["zstd", "-q", "-c"], input=tar_bytes(members), check=True,
                              stdout=subprocess.PIPE).stdout
    elif out.endswith(".tar.gz") or out.endswith(".tgz"):
        data = tar_bytes(members, "gz")
    elif out.endswith(".tar.xz"):
        data = tar_bytes(members, "xz")
    elif out.endswith(".tar.bz2"):
        data = tar_bytes(members, "bz2")
    elif out.endswith(".tar"):
        data = tar_bytes(members)
    else:
        raise SystemExit(f"unknown archive type: {out}")
    with open(out, "wb") as fh:
        fh.write(data)


if __name__ == "__main__":
    main()
