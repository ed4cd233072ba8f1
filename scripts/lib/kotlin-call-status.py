#!/usr/bin/env python3
"""Rewrites one helper in the Kotlin that uniffi generates, in each file given
(run by scripts/gen-bindings on every generation, on every crate's module:
each has its own copy of the helper, and a clink_core record handed to a
clink_ffi call is lowered into a buffer clink_core's allocates): every call
into Rust passes a
`UniffiRustCallStatus`, a JNA `Structure`, and uniffi 0.32 allocates a new
one per call. That allocation (native memory with a cleaner, a nested
`RustBuffer` structure) and JNA copying both structures field by field,
through reflection, before and after the call, were most of a trivial
call's cost from Kotlin. uniffi has no option for it, so:

- each thread keeps a few idle statuses and reuses them (a few: lowering
  a string argument calls Rust for a buffer while the outer call holds its
  status, and a callback from Rust may call Rust again);
- its automatic copying is off: Rust writes only the status code on
  success, so the helper reads that one byte, and reads the whole structure
  (the error buffer) only when the call failed; a failed call's status is
  not reused.

The helper's text is matched exactly: if a uniffi update changes it, this
script fails and the generation with it, rather than ship bindings that
silently lost the rewrite (or a half-applied one)."""

import sys

ORIGINAL = """\
private inline fun <U, E: kotlin.Exception> uniffiRustCallWithError(errorHandler: UniffiRustCallStatusErrorHandler<E>, callback: (UniffiRustCallStatus) -> U): U {
    var status = UniffiRustCallStatus()
    val return_value = callback(status)
    uniffiCheckCallStatus(errorHandler, status)
    return return_value
}
"""

REWRITTEN = """\
private inline fun <U, E: kotlin.Exception> uniffiRustCallWithError(errorHandler: UniffiRustCallStatusErrorHandler<E>, callback: (UniffiRustCallStatus) -> U): U {
    // Rewritten by scripts/lib/kotlin-call-status.py: a reused status,
    // read back only when the call failed.
    val status = UniffiReusedCallStatus.take()
    val return_value = callback(status)
    if (status.getPointer().getByte(0) == UNIFFI_CALL_SUCCESS) {
        UniffiReusedCallStatus.giveBack(status)
    } else {
        status.read()
        uniffiCheckCallStatus(errorHandler, status)
    }
    return return_value
}

// Idle call statuses, a few per thread (see uniffiRustCallWithError), their
// code zero; JNA neither writes nor reads them around a call. A few, not
// one: lowering an argument (a string) calls Rust while the outer call
// holds its status.
internal object UniffiReusedCallStatus {
    private const val KEPT_PER_THREAD = 4
    private val idle = ThreadLocal.withInitial { ArrayDeque<UniffiRustCallStatus>(KEPT_PER_THREAD) }

    fun take(): UniffiRustCallStatus {
        idle.get().removeLastOrNull()?.let { return it }
        val fresh = UniffiRustCallStatus()
        fresh.write()
        fresh.setAutoSynch(false)
        return fresh
    }

    fun giveBack(status: UniffiRustCallStatus) {
        val statuses = idle.get()
        if (statuses.size < KEPT_PER_THREAD) {
            statuses.addLast(status)
        }
    }
}
"""

# The status code must be the structure's first field for the one-byte read.
STATUS_LAYOUT = '@Structure.FieldOrder("code", "error_buf")\ninternal open class UniffiRustCallStatus : Structure() {\n    @JvmField var code: Byte = 0\n'


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for what, needle in (("uniffiRustCallWithError", ORIGINAL), ("UniffiRustCallStatus's layout", STATUS_LAYOUT)):
        count = text.count(needle)
        if count != 1:
            sys.exit(f"{path}: expected {what} exactly once as uniffi 0.32 writes it, found it {count} times; "
                     "update scripts/lib/kotlin-call-status.py for this uniffi version")
    text = text.replace(ORIGINAL, REWRITTEN)
    if text.count("= UniffiRustCallStatus()") != 1:
        sys.exit(f"{path}: a call status is still allocated outside the reused one; "
                 "update scripts/lib/kotlin-call-status.py for this uniffi version")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: kotlin-call-status.py GENERATED.kt...")
    for generated in sys.argv[1:]:
        main(generated)
