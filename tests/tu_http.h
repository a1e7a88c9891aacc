/* tu_http.h -- a test's side of attnd's HTTP listener: plain HTTP/1.0
 * requests over a loopback socket, and reading samples out of a scrape.
 *
 *     char *body = NULL;
 *     int status = tu_http_get(port, "/metrics", &body, 2000);   // 200
 *     double n = tu_prom_value(body, "attnd_replies_sent_total");
 *     free(body);
 *
 * The client side only: it sends fixed request text and reads until the
 * server closes, so that the server under test does all the parsing.
 */
#ifndef TESTS_TU_HTTP_H
#define TESTS_TU_HTTP_H

#include <stddef.h>

/* Send request (raw bytes) to 127.0.0.1:port and read until the server
 * closes or timeout_ms passes.  Returns the status code of the answer, or
 * -1 when none came (connection refused, closed without an answer, timeout);
 * *body (if body is not NULL) gets what followed the headers (caller frees). */
int tu_http_raw(int port, const char *request, size_t len, char **body, int timeout_ms);
/* "METHOD path HTTP/1.0" with a Host header. */
int tu_http(int port, const char *method, const char *path, char **body, int timeout_ms);
int tu_http_get(int port, const char *path, char **body, int timeout_ms);

/* A connected socket to 127.0.0.1:port, or -1 (for tests that hold one). */
int tu_http_connect(int port);

/* The value of the sample whose name and labels are exactly series
 * ("attnd_requests_total{op=\"rank\",code=\"ok\"}"); NAN when absent. */
double tu_prom_value(const char *scrape, const char *series);

#endif
