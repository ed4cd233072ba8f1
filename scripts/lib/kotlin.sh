# Sourced by scripts/test-bindings and scripts/bench-bindings: a Kotlin
# compiler and JNA for running the generated Kotlin on the JVM, without
# Gradle or an Android SDK.
#
# kotlinc comes from the npm package kotlin-compiler, unpacked under
# target/ (nothing global). JNA is Debian's libjna-java (its native part is
# in libjna-jni); set JNA_JAR to use another jar, e.g. Maven Central's.
# kotlinx-coroutines (the generated code's `suspend` functions need it) is
# the jar the same npm package ships in its lib/ (1.8.0 with 2.4.20; Debian's
# libkotlinx-coroutines-java is 1.0, too old); set COROUTINES_JAR to use
# another, e.g. Maven Central's kotlinx-coroutines-core-jvm.

KOTLIN_VERSION=2.4.20
KOTLIN_HOME="target/kotlin-cache/kotlin-compiler-$KOTLIN_VERSION"
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
KOTLIN_STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
JNA_JAR="${JNA_JAR:-/usr/share/java/jna.jar}"
COROUTINES_JAR="${COROUTINES_JAR:-$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar}"

ensure_kotlin() {
    if [[ ! -x "$KOTLINC" ]]; then
        local cache
        cache="$(dirname "$KOTLIN_HOME")"
        mkdir -p "$cache"
        (cd "$cache" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null)
        tar xzf "$cache/kotlin-compiler-$KOTLIN_VERSION.tgz" -C "$cache"
        rm -rf "$KOTLIN_HOME"
        mv "$cache/package" "$KOTLIN_HOME"
        rm "$cache/kotlin-compiler-$KOTLIN_VERSION.tgz"
    fi
    if [[ ! -f "$JNA_JAR" ]]; then
        echo "JNA not found at $JNA_JAR: apt-get install libjna-java, or set JNA_JAR" >&2
        return 1
    fi
    if [[ ! -f "$COROUTINES_JAR" ]]; then
        echo "kotlinx-coroutines not found at $COROUTINES_JAR: set COROUTINES_JAR" >&2
        return 1
    fi
}

# compile_kotlin JAR SOURCE...: the generated bindings (every crate's
# package) plus the given sources, compiled once into JAR.
compile_kotlin() {
    local jar="$1"
    shift
    mkdir -p "$(dirname "$jar")"
    local generated=()
    mapfile -t generated < <(find bindings/generated/kotlin -name '*.kt' | sort)
    "$KOTLINC" -nowarn -cp "$JNA_JAR:$COROUTINES_JAR" -d "$jar" "${generated[@]}" "$@"
}

# run_kotlin JAR MAIN_CLASS LIBRARY_DIR: runs MAIN_CLASS with the library
# that JNA loads taken from LIBRARY_DIR.
run_kotlin() {
    local jar="$1" main="$2" library_dir="$3"
    java -Djna.library.path="$library_dir" -cp "$jar:$JNA_JAR:$COROUTINES_JAR:$KOTLIN_STDLIB" "$main"
}
