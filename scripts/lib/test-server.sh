# Sourced by scripts/test-bindings: a real clink-server (debug build) on a
# free loopback port, with a temporary SQLite file and a development OTP
# file, for the bindings' wallet scenarios.
#
# start_test_server exports CLINK_TEST_SERVER_URL, CLINK_TEST_OTP_FILE
# (registration codes as `<e164> <code>` lines) and CLINK_TEST_OPERATOR_TOKEN
# (the operator's credential, for cashing in test money); stop_test_server stops the
# server and removes its files. Callers stop it from an EXIT trap, passing
# the exit status: `trap 'stop_test_server $?' EXIT`; after a failure the
# end of the server's log is printed.

TEST_SERVER_PID=
TEST_SERVER_DIR=

start_test_server() {
    # The workspace build the tests already made (scripts/lib/build.sh), not a
    # single-package build with other features that would recompile it.
    workspace_build
    TEST_SERVER_DIR="$(mktemp -d)"
    export CLINK_TEST_OPERATOR_TOKEN="test-operator-token-$RANDOM$RANDOM$RANDOM"
    local log="$TEST_SERVER_DIR/server.log"
    # Port 0: the kernel picks a free port; the server logs the one it got.
    NO_COLOR=1 RUST_LOG=info "${CARGO_TARGET_DIR:-target}/debug/clink-server" \
        --listen 127.0.0.1:0 \
        --database-url "sqlite:$TEST_SERVER_DIR/clink.db" \
        --dev-otp-file "$TEST_SERVER_DIR/otp.txt" \
        --operator-token "$CLINK_TEST_OPERATOR_TOKEN" \
        >"$log" 2>&1 &
    TEST_SERVER_PID=$!
    local addr=
    for _ in $(seq 1 100); do
        addr="$(grep -o 'clink-server listening addr=[0-9.:]*' "$log" | head -n 1 | cut -d= -f2 || true)"
        if [[ -n "$addr" ]]; then
            break
        fi
        if ! kill -0 "$TEST_SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        echo "clink-server did not start; its log:" >&2
        cat "$log" >&2
        return 1
    fi
    export CLINK_TEST_SERVER_URL="http://$addr"
    export CLINK_TEST_OTP_FILE="$TEST_SERVER_DIR/otp.txt"
    echo "clink-server (pid $TEST_SERVER_PID) at $CLINK_TEST_SERVER_URL"
}

stop_test_server() {
    local status="${1:-0}"
    if [[ "$status" != 0 && -f "$TEST_SERVER_DIR/server.log" ]]; then
        echo "== the end of clink-server's log" >&2
        tail -n 30 "$TEST_SERVER_DIR/server.log" >&2
    fi
    if [[ -n "$TEST_SERVER_PID" ]]; then
        # SIGINT: the server's graceful shutdown.
        kill -INT "$TEST_SERVER_PID" 2>/dev/null || true
        wait "$TEST_SERVER_PID" 2>/dev/null || true
        TEST_SERVER_PID=
    fi
    if [[ -n "$TEST_SERVER_DIR" ]]; then
        rm -rf "$TEST_SERVER_DIR"
        TEST_SERVER_DIR=
    fi
}
