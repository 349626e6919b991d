#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check that the uAPI header, the module and the documentation agree.

The Rust types are generated from include/uapi/linux/ioasid.h by bindgen at
build time, so their layout cannot drift; what can drift is everything said
about it. This checks that:

 - every IOASID_* constant, ioctl, struct and field of the header is in
   Documentation/userspace-api/ioasid.rst;
 - each struct's minimum size agrees between the header, the documentation
   and the compile-time assertion in src/uapi.rs;
 - each ioctl's own errnos agree between the header and the documentation;
 - every errno the module's code can return is in the documentation's table;
 - every ioctl of the header is dispatched by src/context.rs;
 - the per-ioctl errno table the fuzzers check against
   (tools/selftests/ioasid/ioasid_state.h) agrees with the header.

Prints one line per problem; exits non-zero if there is any.
Usage: uapi_check.py REPO
"""

import glob
import os
import re
import sys

ERRNO = re.compile(r"\bE(?:INVAL|2BIG|OPNOTSUPP|FAULT|NOTTY|NOENT|NOSPC|NOMEM|OVERFLOW|BUSY|PERM|"
                   r"ACCES|EXIST|NODEV|NXIO|AGAIN|INTR|IO|RANGE|MSGSIZE|SRCH|BADF|DOM|XDEV|"
                   r"NOTSUPP|NOSYS|MEDIUMTYPE|ALREADY|INPROGRESS|CANCELED|DEADLK|NODATA|PROTO|OWNERDEAD|"
                   r"TIMEDOUT|NOTCONN|MFILE|NFILE|FBIG|ROFS|SPIPE|MLINK|PIPE|ILSEQ)\b")
COMMON = {"EINVAL", "E2BIG", "EOPNOTSUPP", "EFAULT"}


def main():
    repo = sys.argv[1]
    header = open(os.path.join(repo, "include/uapi/linux/ioasid.h")).read()
    doc = open(os.path.join(repo, "Documentation/userspace-api/ioasid.rst")).read()
    uapi_rs = open(os.path.join(repo, "src/uapi.rs")).read()
    context_rs = open(os.path.join(repo, "src/context.rs")).read()
    code = "".join(open(f).read() for f in sorted(glob.glob(os.path.join(repo, "src/*.rs"))))
    problems = []
    header_errnos = {}

    # Constants and ioctls.
    names = set(re.findall(r"#define\s+(IOASID_\w+)", header))
    names |= set(re.findall(r"^\s*(IOASID_\w+)\s*=", header, re.M))
    names.discard("_UAPI_LINUX_IOASID_H")
    for name in sorted(names):
        if name.startswith("IOASID_CMD_"):
            continue  # ioctl numbers: documented through the ioctl names
        if name not in doc:
            problems.append(f"{name} is in the header but not in the documentation")

    ioctls = re.findall(r"#define\s+(IOASID_\w+)\s+_IO\(", header)
    for ioctl in ioctls:
        if not re.search(rf"^{ioctl}\n-+\n", doc, re.M):
            problems.append(f"{ioctl} has no section in the documentation")
        if not re.search(rf"uapi::{ioctl}\s*=>", context_rs):
            problems.append(f"{ioctl} is not dispatched in src/context.rs")

    # Structs, fields, minimum sizes, errnos.
    for m in re.finditer(r"/\*\*\n \* struct (\w+) - ioctl\((\w+)\)\n(.*?)\*/\nstruct \1 \{\n(.*?)\n\};",
                         header, re.S):
        struct, ioctl, kdoc, body = m.groups()
        fields = re.findall(r"(\w+);", body)
        doc_block = re.search(rf"struct {struct} \{{\n(.*?)\n\s*\}};", doc, re.S)
        if not doc_block:
            problems.append(f"struct {struct} is not shown in the documentation")
            continue
        for f in fields:
            if not re.search(rf"\b{f};", doc_block.group(1)):
                problems.append(f"struct {struct}: field {f} is missing from the documentation")
        hmin = re.search(r"@argsz:.*minimum (\d+)", kdoc)
        dmin = re.search(r"argsz;\s*/\* minimum (\d+) \*/", doc_block.group(1))
        rmin = re.search(rf"<{struct} as UserStruct>::MIN_SIZE == (\d+)", uapi_rs)
        got = {"header": hmin and hmin.group(1), "documentation": dmin and dmin.group(1),
               "src/uapi.rs": rmin and rmin.group(1)}
        if None in got.values() or len(set(got.values())) != 1:
            problems.append(f"struct {struct}: minimum size disagrees: {got}")
        herr = set(ERRNO.findall(kdoc.split("Errors:", 1)[-1])) - COMMON
        header_errnos[ioctl] = herr
        section = re.search(rf"^{ioctl}\n-+\n(.*?)(?=^\S[^\n]*\n[-=]+\n|\Z)", doc, re.S | re.M)
        if section:
            derr = re.search(r"Errors:(.*?)(?:\n\n|\Z)", section.group(1), re.S)
            derr = set(ERRNO.findall(derr.group(1))) - COMMON if derr else set()
            if herr != derr:
                problems.append(f"{ioctl}: errnos differ: header {sorted(herr)}, documentation {sorted(derr)}")

    # The fuzzers' table of documented errnos (beyond the common ones) is the header's.
    state = open(os.path.join(repo, "tools/selftests/ioasid/ioasid_state.h")).read()
    for name, errs in re.findall(r'\{ "(IOASID_\w+)",[^{]*?\{ ([^}]*) \} \}', state, re.S):
        terr = set(ERRNO.findall(errs)) - COMMON
        if name in header_errnos and terr != header_errnos[name]:
            problems.append(f"{name}: ioasid_state.h lists {sorted(terr)}, the header {sorted(header_errnos[name])}")

    # Every errno the code can return is documented.
    table = re.search(r"^Errors\n-+\n(.*?)(?=^\S[^\n]*\n[-=]+\n)", doc, re.S | re.M)
    documented = set(ERRNO.findall(table.group(1))) if table else set()
    # Errnos the code names itself (not C error codes it translates, bindings::E...).
    code_errnos = set(ERRNO.findall(re.sub(r"bindings::E\w+|//.*", "", code)))
    for e in sorted(code_errnos - documented):
        problems.append(f"{e} can be returned by the module but is not in the documentation's errno table")

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
