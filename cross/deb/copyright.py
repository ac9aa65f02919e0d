#!/usr/bin/env python3
"""Write the Debian copyright file of the viprouter package (DEP-5, machine-readable).

    copyright.py --triple TRIPLE [--src DIR] > usr/share/doc/viprouter/copyright

viprouter itself is Apache-2.0. /usr/bin/viprouter is one binary that also contains the Rust
standard library, the crates cargo links into it for TRIPLE (`cargo tree -e normal,no-proc-macro`:
build scripts and proc-macros run at build time only and are not in the binary) and, for the
static musl triples, musl libc. Each gets a Files paragraph naming it as `vendor/NAME-VERSION/*`
(its source as cargo fetched it; not shipped in the package) with the copyright lines of its
own licence files (else its Cargo.toml authors) and its licence, and every licence used gets
its full text (Apache-2.0 by reference to /usr/share/common-licenses, as policy allows).

Standard library only; runs `cargo` offline from the lock file (the crates are already fetched
by the build that made the binary).
"""

import argparse
import json
import os
import re
import subprocess
import sys

# Full texts of the licences other than Apache-2.0 that the linked code uses, in the generic
# form DEP-5 expects (the copyright notices are in each Files paragraph).
EXPAT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
THE SOFTWARE."""

BSD_3_CLAUSE = """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE."""

UNLICENSE = """This is free and unencumbered software released into the public domain.

Anyone is free to copy, modify, publish, use, compile, sell, or
distribute this software, either in source code form or as a compiled
binary, for any purpose, commercial or non-commercial, and by any
means.

In jurisdictions that recognize copyright laws, the author or authors
of this software dedicate any and all copyright interest in the
software to the public domain. We make this dedication for the benefit
of the public at large and to the detriment of our heirs and
successors. We intend this dedication to be an overt act of
relinquishment in perpetuity of all present and future rights to this
software under copyright law.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR
OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE,
ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
OTHER DEALINGS IN THE SOFTWARE.

For more information, please refer to <http://unlicense.org/>"""

APACHE = """Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.

On Debian systems, the complete text of the Apache License, Version 2.0
can be found in "/usr/share/common-licenses/Apache-2.0"."""

ISC = """Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE."""

TEXTS = {"Apache-2.0": APACHE, "Expat": EXPAT, "BSD-3-Clause": BSD_3_CLAUSE, "ISC": ISC, "Unlicense": UNLICENSE}

# SPDX names in Cargo.toml -> DEP-5 short names (DEP-5 calls the MIT licence "Expat").
DEP5_NAME = {"MIT": "Expat", "Apache-2.0": "Apache-2.0", "BSD-3-Clause": "BSD-3-Clause", "ISC": "ISC",
             "Unlicense": "Unlicense"}


def dep5_license(spdx: str) -> str:
    """`MIT OR Apache-2.0` (also the old `MIT/Apache-2.0`) -> `Expat or Apache-2.0`;
    `Apache-2.0 AND ISC` (ring: both apply) -> `Apache-2.0 and ISC`. No parentheses: a crate
    whose expression has them stops the build here, to be written out by hand."""
    if "(" in spdx:
        sys.exit(f"copyright.py: licence expression {spdx!r} has parentheses: write its DEP-5 form here")
    words = [w for w in re.split(r"\s+(OR|AND)\s+|/", spdx) if w]
    names = [w.strip() for w in words if w not in ("OR", "AND")]
    unknown = [n for n in names if n not in DEP5_NAME]
    if unknown or not names:
        sys.exit(f"copyright.py: licence {unknown} of {spdx!r} has no text here: add it to TEXTS")
    out = DEP5_NAME[names[0]]
    ops = [w for w in words if w in ("OR", "AND")] or ["OR"] * (len(names) - 1)  # `/` is OR
    for op, name in zip(ops, names[1:]):
        out += f" {op.lower()} {DEP5_NAME[name]}"
    return out


def cargo(args: list[str], src: str) -> str:
    return subprocess.run(["cargo", *args], cwd=src, check=True, capture_output=True, text=True).stdout


def notices(directory: str, authors: list[str], name: str) -> list[str]:
    """Copyright lines of a crate's licence files; else its authors; else `the NAME authors`."""
    found: list[str] = []
    for f in sorted(os.listdir(directory)):
        if not f.upper().startswith(("LICEN", "COPYING", "COPYRIGHT", "UNLICENSE")):
            continue
        with open(os.path.join(directory, f), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = re.match(r"\s*Copyright\s+(?:\(c\)\s*|©\s*)?(\d.*)$", line.strip(), re.I)
                if m and "[yyyy]" not in line and "{" not in line:
                    text = m.group(1).strip().rstrip(".")
                    if text not in found:
                        found.append(text)
    if not found:
        found = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in authors] or [f"the {name} authors"]
    return found


def paragraph(files: str, copyright_lines: list[str], license_name: str, comment: str = "") -> str:
    out = [f"Files: {files}", "Copyright: " + "\n ".join(copyright_lines), f"License: {license_name}"]
    if comment:
        out.append("Comment: " + comment)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--triple", required=True)
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    a = ap.parse_args()
    tree = cargo(["tree", "--locked", "--offline", "-e", "normal,no-proc-macro", "--target", a.triple,
                  "--prefix", "none", "--format", "{p}"], a.src)
    linked = {tuple(line.split()[:2]) for line in tree.splitlines() if line.strip()}
    # --filter-platform: only the target's packages, which the build has fetched. Without it
    # cargo wants every package of Cargo.lock (Windows-only ones too), and offline on a machine
    # whose registry holds only what the builds fetched it fails ("failed to download
    # `anstyle-wincon`", a fresh CI machine).
    meta = json.loads(cargo(["metadata", "--locked", "--offline", "--format-version", "1",
                             "--filter-platform", a.triple], a.src))
    paragraphs = []
    used = {"Apache-2.0", "Expat"}
    for p in sorted(meta["packages"], key=lambda p: (p["name"], p["version"])):
        if (p["name"], "v" + p["version"]) not in linked:
            continue
        if p["name"] == "viprouter":
            continue
        lic = dep5_license(p["license"] or "")
        used.update(re.split(r" or | and ", lic))
        lines = notices(os.path.dirname(p["manifest_path"]), p["authors"], p["name"])
        paragraphs.append(paragraph(f"vendor/{p['name']}-{p['version']}/*", lines, lic))
        if p["name"] == "libsodium-sys-stable":
            # Its crate licence covers the Rust bindings; the C library it builds from the
            # tarball it ships (LATEST.tar.gz) and links statically is libsodium's, ISC.
            used.add("ISC")
            paragraphs.append(paragraph(f"vendor/{p['name']}-{p['version']}/LATEST.tar.gz",
                                        ["2013-2026 Frank Denis <j at pureftpd dot org>"], "ISC",
                                        "libsodium, built from this tarball and linked statically."))
    rustc = subprocess.run(["rustc", "--version"], cwd=a.src, check=True, capture_output=True, text=True).stdout.split()[1]
    paragraphs.insert(0, paragraph(f"vendor/rust-std-{rustc}/*", ["The Rust Project Developers"], "Expat or Apache-2.0",
                                   "the Rust standard library (core, alloc, std) of rustc " + rustc + "."))
    if "musl" in a.triple:
        paragraphs.insert(1, paragraph("vendor/musl/*", ["2005-2020 Rich Felker, et al."], "Expat",
                                       "musl libc, linked statically."))
    head = "\n".join([
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Upstream-Name: viprouter",
        "Comment: /usr/bin/viprouter is a single binary for " + a.triple + " that also",
        " contains the Rust standard library" + (", musl libc" if "musl" in a.triple else ""),
        " and the crates named below (vendor/NAME-VERSION/* stands for the source of",
        " each as cargo fetched it; it is not shipped in this package).",
    ])
    main_para = paragraph("*", ["2026 the viprouter authors"], "Apache-2.0")
    licenses = [f"License: {n}\n" + "\n".join(" " + l if l else " ." for l in TEXTS[n].splitlines())
                for n in ["Apache-2.0", "Expat", "BSD-3-Clause", "ISC", "Unlicense"] if n in used]
    print("\n\n".join([head, main_para, *paragraphs, *licenses]))


if __name__ == "__main__":
    main()
