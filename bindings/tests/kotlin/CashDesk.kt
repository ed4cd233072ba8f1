// The operator's cash-in, the only way money enters a balance from outside:
// what the test wallets are funded with. scripts/test-bindings starts the
// server with an operator token and passes it in CLINK_TEST_OPERATOR_TOKEN.
package app.clink.test

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.atomic.AtomicLong

private val cashInKeys = AtomicLong()
private val http: HttpClient by lazy { HttpClient.newHttpClient() }

/** Credits `amount` to the user of `phone` (as typed) at the operator's desk. */
internal fun cashIn(phone: String, amount: Long) {
    val key = "kt-${ProcessHandle.current().pid()}-${cashInKeys.incrementAndGet()}"
    val body = """{"idempotency_key":"$key","phone":"$phone","amount":$amount,"reference":"test desk"}"""
    val request = HttpRequest.newBuilder(URI.create("$serverUrl/v1/operator/cash-in"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer ${env("CLINK_TEST_OPERATOR_TOKEN")}")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build()
    val response = http.send(request, HttpResponse.BodyHandlers.ofString())
    check(response.statusCode() == 201) { "cash-in refused: ${response.statusCode()} ${response.body()}" }
}
