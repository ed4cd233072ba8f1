# Sourced by the test scripts: one set of features for every build of the
# workspace, so the test run, the server the binding tests talk to, the
# library they load and the bindings generator come out of one build instead
# of several single-package builds that each resolve other features and
# recompile dozens of crates.
#
# os-keyring: the OS keyring store (tested on the kernel keyring);
# audio-io: microphone and speaker through cpal (tested through ALSA's file
# plugin).
WORKSPACE_FEATURES="clink-core/os-keyring,clink-core/audio-io"

# workspace_build [CARGO ARGS...]: builds every crate of the workspace (debug).
workspace_build() {
    cargo build --quiet --workspace --features "$WORKSPACE_FEATURES" "$@"
}
