// A misbehaving test plugin in C: handle_request traps (unreachable) when
// the request has an X-Misbehave header; otherwise it passes it on.
#include <stdint.h>

__attribute__((import_module("http_handler"), import_name("get_header_values")))
uint64_t get_header_values(uint32_t kind, const char *name, uint32_t name_len, char *buf, uint32_t limit);

__attribute__((export_name("handle_request"))) int64_t handle_request(void) {
	if (get_header_values(0, "X-Misbehave", 11, 0, 0) >> 32) {
		__builtin_trap();
	}
	return 1;
}

__attribute__((export_name("handle_response"))) void handle_response(int32_t req_ctx, int32_t is_error) {}
