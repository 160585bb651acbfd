// A Gatehouse test plugin in C (clang + wasi-libc, reactor with
// _initialize). It copies the request's X-In header to the response's X-Out
// header, and sets X-Lang: c and X-C-Config (its config string).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("http_handler"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("get_config") uint32_t get_config(char *buf, uint32_t limit);
IMPORT("get_header_values") uint64_t get_header_values(uint32_t kind, const char *name, uint32_t name_len, char *buf, uint32_t limit);
IMPORT("set_header_value") void set_header_value(uint32_t kind, const char *name, uint32_t name_len, const char *value, uint32_t value_len);
IMPORT("log") void host_log(int32_t level, const char *msg, uint32_t len);

static char *config;
static uint32_t config_len;
static char *in_value;
static uint32_t in_len;

// Reactor start: read the config once.
__attribute__((constructor)) static void start(void) {
	config_len = get_config(NULL, 0);
	config = malloc(config_len + 1);
	get_config(config, config_len);
}

EXPORT("handle_request") int64_t handle_request(void) {
	uint64_t cl = get_header_values(0, "X-In", 4, NULL, 0);
	uint32_t len = (uint32_t)cl;
	free(in_value);
	in_value = malloc(len + 1);
	get_header_values(0, "X-In", 4, in_value, len);
	in_len = (cl >> 32) ? len - 1 : 0; // drop the NUL terminator of the first value
	set_header_value(0, "X-Lang-Req", 10, "c", 1);
	host_log(0, "c guest saw a request", 21);
	return ((int64_t)7 << 32) | 1;
}

EXPORT("handle_response") void handle_response(int32_t req_ctx, int32_t is_error) {
	if (req_ctx != 7) __builtin_trap();
	set_header_value(1, "X-Lang", 6, "c", 1);
	set_header_value(1, "X-Out", 5, in_value, in_len);
	set_header_value(1, "X-C-Config", 10, config, config_len);
}
