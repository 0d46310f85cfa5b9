#!/usr/bin/env python3
"""Gives compiler-builtins' 128-bit libcalls the calling convention LLVM 23 uses for BPF.

rustc 1.96 compiles `__multi3` and friends for BPF taking and returning i128 through
memory (an sret pointer and pointer arguments); LLVM 23's BPF backend calls them with
i128 values in register pairs. This renames each such definition in the textual IR to
`<name>.sret` and adds `<name>` as a wrapper in LLVM 23's convention.

    i128-libcalls.py IN.ll OUT.ll     exit 0: rewritten; exit 3: nothing to rewrite
"""
import re
import sys

# (name, extra trailing arguments after the two i128 operands)
LIBCALLS = [
    ("__multi3", []),
    ("__udivti3", []),
    ("__umodti3", []),
    ("__divti3", []),
    ("__modti3", []),
    ("__muloti4", ["ptr %overflow"]),
]


def wrapper(name, extra):
    params = ", ".join(["i128 %a", "i128 %b"] + extra)
    args = ", ".join(
        ["ptr sret(i128) align 16 %out", "ptr align 16 %pa", "ptr align 16 %pb"] + extra
    )
    return f"""
define weak hidden i128 @{name}({params}) {{
  %out = alloca i128, align 16
  %pa = alloca i128, align 16
  %pb = alloca i128, align 16
  store i128 %a, ptr %pa, align 16
  store i128 %b, ptr %pb, align 16
  call void @{name}.sret({args})
  %r = load i128, ptr %out, align 16
  ret i128 %r
}}
"""


def main(source, target):
    ir = open(source).read()
    rewritten = False
    for name, extra in LIBCALLS:
        by_memory = re.compile(
            r"^define [^@\n]*void @" + re.escape(name) + r"\(ptr [^,]*sret\(", re.M
        )
        if not by_memory.search(ir):
            continue
        ir = ir.replace(f"@{name}(", f"@{name}.sret(") + wrapper(name, extra)
        rewritten = True
    # The ThinLTO summary names the old symbols: drop it; the linker does not need it.
    ir = "\n".join(line for line in ir.split("\n") if not line.startswith("^"))
    open(target, "w").write(ir)
    return 0 if rewritten else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
